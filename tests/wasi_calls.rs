//! Each WASI call does what preview1 says: arguments and environment,
//! clocks, randomness, the fd and path calls on files and directories,
//! `poll_oneoff`, `proc_exit`, `sched_yield`. Called through a module that
//! forwards every import (`wasi_support::Guest`), as a guest would.

mod wasi_support;

use shoal::wasi::{rights, ReadPipe, WasiCtx, WritePipe};
use shoal::TrapKind;
use std::time::{Duration, Instant};
use wasi_support::errno::*;
use wasi_support::{Guest, TempDir, BUF, IOVS, OUT, OUT2};

const PREOPEN: i64 = 3;
const FOLLOW: u32 = 1;
const O_CREAT: u32 = 1;
const O_DIRECTORY: u32 = 2;
const O_TRUNC: u32 = 8;
const APPEND: u32 = 1;
const ALL: u64 = u64::MAX;
const DIR: u64 = rights::DIR_ALL | rights::FD_READ;

fn guest_in(dir: &TempDir) -> Guest {
    Guest::new(
        WasiCtx::builder()
            .preopened_dir(dir.path(), "/work")
            .build()
            .unwrap(),
    )
}

#[test]
fn args_and_environment() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .args(["prog", "a b", ""])
            .env("K", "v=1")
            .env("EMPTY", "")
            .build()
            .unwrap(),
    );
    assert_eq!(
        g.call("args_sizes_get", &[OUT as i64, OUT2 as i64]),
        SUCCESS
    );
    assert_eq!((g.read_u32(OUT), g.read_u32(OUT2)), (3, 5 + 4 + 1));
    assert_eq!(g.call("args_get", &[BUF as i64, BUF as i64 + 64]), SUCCESS);
    let ptrs: Vec<u32> = (0..3).map(|i| g.read_u32(BUF + 4 * i)).collect();
    assert_eq!(ptrs, [BUF + 64, BUF + 69, BUF + 73]);
    assert_eq!(g.read(BUF + 64, 10), b"prog\0a b\0\0");
    assert_eq!(
        g.call("environ_sizes_get", &[OUT as i64, OUT2 as i64]),
        SUCCESS
    );
    assert_eq!((g.read_u32(OUT), g.read_u32(OUT2)), (2, 6 + 7));
    assert_eq!(
        g.call("environ_get", &[BUF as i64, BUF as i64 + 64]),
        SUCCESS
    );
    assert_eq!(g.read(BUF + 64, 13), b"K=v=1\0EMPTY=\0");
}

#[test]
fn builder_rejects_what_c_cannot_hold() {
    assert!(WasiCtx::builder().arg("a\0b").build().is_err());
    assert!(WasiCtx::builder().env("A=B", "c").build().is_err());
    assert!(WasiCtx::builder().env("", "c").build().is_err());
    assert!(WasiCtx::builder().env("K", "v\0").build().is_err());
    let missing = WasiCtx::builder()
        .preopened_dir("/definitely/not/a/dir", "/x")
        .build();
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("/definitely/not/a/dir"));
}

#[test]
fn clocks_and_random() {
    let mut g = Guest::new(WasiCtx::default());
    assert_eq!(g.call("clock_time_get", &[0, 0, OUT as i64]), SUCCESS);
    let wall = g.read_u64(OUT);
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(wall.abs_diff(host) < 5_000_000_000, "{wall} vs {host}");
    assert_eq!(g.call("clock_time_get", &[1, 0, OUT as i64]), SUCCESS);
    let a = g.read_u64(OUT);
    assert_eq!(g.call("clock_time_get", &[1, 0, OUT as i64]), SUCCESS);
    assert!(g.read_u64(OUT) >= a);
    for id in 0..4 {
        assert_eq!(
            g.call("clock_res_get", &[id, OUT as i64]),
            SUCCESS,
            "clock {id}"
        );
        assert!(g.read_u64(OUT) >= 1);
        assert_eq!(g.call("clock_time_get", &[id, 0, OUT as i64]), SUCCESS);
    }
    assert_eq!(g.call("clock_time_get", &[9, 0, OUT as i64]), INVAL);
    assert_eq!(g.call("clock_res_get", &[9, OUT as i64]), INVAL);

    g.write(BUF, &[0u8; 64]);
    assert_eq!(g.call("random_get", &[BUF as i64, 64]), SUCCESS);
    let first = g.read(BUF, 64);
    assert_eq!(g.call("random_get", &[BUF as i64, 64]), SUCCESS);
    assert_ne!(first, g.read(BUF, 64));
    assert!(first.iter().any(|&b| b != 0));
}

#[test]
fn stdio_pipes_and_fdstat() {
    let out = WritePipe::new();
    let err = WritePipe::new();
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdin(ReadPipe::from("hello"))
            .stdout(out.clone())
            .stderr(err.clone())
            .build()
            .unwrap(),
    );
    assert_eq!(g.read_fd(0, 3).unwrap(), b"hel");
    assert_eq!(g.read_fd(0, 10).unwrap(), b"lo");
    assert_eq!(g.read_fd(0, 10).unwrap(), b"");
    assert_eq!(g.write_fd(1, b"to stdout"), Ok(9));
    assert_eq!(g.write_fd(2, b"to stderr"), Ok(9));
    assert_eq!(out.contents(), b"to stdout");
    assert_eq!(err.contents(), b"to stderr");
    // Several iovecs in one write, an empty one among them.
    g.write(BUF, b"abcdef");
    let mut iovs = Vec::new();
    for (ptr, len) in [(BUF, 2u32), (BUF, 0), (BUF + 4, 2)] {
        iovs.extend_from_slice(&ptr.to_le_bytes());
        iovs.extend_from_slice(&len.to_le_bytes());
    }
    g.write(IOVS, &iovs);
    assert_eq!(
        g.call("fd_write", &[1, IOVS as i64, 3, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u32(OUT), 4);
    assert_eq!(out.contents(), b"to stdoutabef");
    // fdstat: stdio cannot seek, so wasi-libc will not treat it as a file.
    assert_eq!(g.call("fd_fdstat_get", &[1, OUT as i64]), SUCCESS);
    let rights_base = g.read_u64(OUT + 8);
    assert_ne!(rights_base & rights::FD_WRITE, 0);
    assert_eq!(rights_base & (rights::FD_SEEK | rights::FD_TELL), 0);
    // With no stdio given, input is empty and output vanishes.
    let mut quiet = Guest::new(WasiCtx::builder().build().unwrap());
    assert_eq!(quiet.read_fd(0, 10).unwrap(), b"");
    assert_eq!(quiet.write_fd(1, b"gone"), Ok(4));
}

#[test]
fn preopens_are_listed() {
    let a = TempDir::new("wasi-pre-a");
    let b = TempDir::new("wasi-pre-b");
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopened_dir(a.path(), "/a")
            .preopened_dir(b.path(), "data/b")
            .build()
            .unwrap(),
    );
    for (fd, name) in [(3, "/a"), (4, "data/b")] {
        assert_eq!(g.call("fd_prestat_get", &[fd, OUT as i64]), SUCCESS);
        assert_eq!(g.read(OUT, 1)[0], 0);
        assert_eq!(g.read_u32(OUT + 4), name.len() as u32);
        assert_eq!(
            g.call("fd_prestat_dir_name", &[fd, BUF as i64, 64]),
            SUCCESS
        );
        assert_eq!(g.read(BUF, name.len() as u32), name.as_bytes());
    }
    assert_eq!(g.call("fd_prestat_get", &[5, OUT as i64]), BADF);
    assert_eq!(g.ctx().open_fds(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn files_read_write_seek_stat() {
    let dir = TempDir::new("wasi-files");
    let mut g = guest_in(&dir);
    let fd = g
        .open(3, "f.txt", FOLLOW, O_CREAT | O_TRUNC, ALL, 0)
        .unwrap();
    assert_eq!(fd, 4);
    assert_eq!(g.write_fd(fd, b"hello world"), Ok(11));
    assert_eq!(std::fs::read(dir.join("f.txt")).unwrap(), b"hello world");
    // tell, seek in every direction, read.
    assert_eq!(g.call("fd_tell", &[fd as i64, OUT as i64]), SUCCESS);
    assert_eq!(g.read_u64(OUT), 11);
    assert_eq!(g.call("fd_seek", &[fd as i64, 6, 0, OUT as i64]), SUCCESS);
    assert_eq!(g.read_u64(OUT), 6);
    assert_eq!(g.read_fd(fd, 100).unwrap(), b"world");
    assert_eq!(g.call("fd_seek", &[fd as i64, -5, 1, OUT as i64]), SUCCESS);
    assert_eq!(g.read_u64(OUT), 6);
    assert_eq!(g.call("fd_seek", &[fd as i64, -3, 2, OUT as i64]), SUCCESS);
    assert_eq!(g.read_u64(OUT), 8);
    assert_eq!(g.call("fd_seek", &[fd as i64, -100, 1, OUT as i64]), INVAL);
    assert_eq!(g.call("fd_seek", &[fd as i64, 0, 3, OUT as i64]), INVAL);
    assert_eq!(g.call("fd_seek", &[1, 0, 0, OUT as i64]), NOTCAPABLE);
    // pread / pwrite leave the position alone.
    g.write(BUF, b"HELLO");
    let iov = [BUF.to_le_bytes(), 5u32.to_le_bytes()].concat();
    g.write(IOVS, &iov);
    assert_eq!(
        g.call("fd_pwrite", &[fd as i64, IOVS as i64, 1, 0, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u32(OUT), 5);
    g.write(BUF, b".....");
    assert_eq!(
        g.call("fd_pread", &[fd as i64, IOVS as i64, 1, 6, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read(BUF, 5), b"world");
    assert_eq!(g.call("fd_tell", &[fd as i64, OUT as i64]), SUCCESS);
    assert_eq!(g.read_u64(OUT), 8);
    assert_eq!(
        g.call("fd_pread", &[0, IOVS as i64, 1, 0, OUT as i64]),
        NOTCAPABLE
    );
    // filestat, set_size, sync, allocate, advise.
    assert_eq!(g.call("fd_filestat_get", &[fd as i64, BUF as i64]), SUCCESS);
    assert_eq!(g.read(BUF + 16, 1)[0], 4, "regular file");
    assert_eq!(g.read_u64(BUF + 32), 11, "size");
    assert_eq!(g.read_u64(BUF + 24), 1, "nlink");
    assert_eq!(g.call("fd_filestat_set_size", &[fd as i64, 5]), SUCCESS);
    assert_eq!(std::fs::read(dir.join("f.txt")).unwrap(), b"HELLO");
    assert_eq!(g.call("fd_sync", &[fd as i64]), SUCCESS);
    assert_eq!(g.call("fd_datasync", &[fd as i64]), SUCCESS);
    assert_eq!(g.call("fd_advise", &[fd as i64, 0, 0, 1]), SUCCESS);
    assert_eq!(g.call("fd_advise", &[fd as i64, 0, 0, 9]), INVAL);
    let alloc = g.call("fd_allocate", &[fd as i64, 0, 4096]);
    assert!(alloc == SUCCESS || alloc == NOTSUP, "{alloc}");
    if alloc == SUCCESS {
        assert_eq!(std::fs::metadata(dir.join("f.txt")).unwrap().len(), 4096);
    }
    // fdstat reports the type and flags.
    assert_eq!(g.call("fd_fdstat_get", &[fd as i64, OUT as i64]), SUCCESS);
    assert_eq!(g.read(OUT, 1)[0], 4);
    assert_eq!(g.call("fd_close", &[fd as i64]), SUCCESS);
    assert_eq!(g.call("fd_close", &[fd as i64]), BADF);
}

#[test]
fn append_mode_and_set_flags() {
    let dir = TempDir::new("wasi-append");
    std::fs::write(dir.join("log"), "one\n").unwrap();
    let mut g = guest_in(&dir);
    let fd = g.open(3, "log", FOLLOW, 0, ALL, APPEND).unwrap();
    assert_eq!(g.call("fd_seek", &[fd as i64, 0, 0, OUT as i64]), SUCCESS);
    assert_eq!(g.write_fd(fd, b"two\n"), Ok(4));
    assert_eq!(
        std::fs::read_to_string(dir.join("log")).unwrap(),
        "one\ntwo\n"
    );
    assert_eq!(g.call("fd_fdstat_get", &[fd as i64, OUT as i64]), SUCCESS);
    assert_eq!(g.read(OUT + 2, 2), [1, 0], "APPEND is reported");
    // Turn append off: writes go where the position is.
    assert_eq!(g.call("fd_fdstat_set_flags", &[fd as i64, 0]), SUCCESS);
    assert_eq!(g.call("fd_seek", &[fd as i64, 0, 0, OUT as i64]), SUCCESS);
    assert_eq!(g.write_fd(fd, b"ONE"), Ok(3));
    assert_eq!(
        std::fs::read_to_string(dir.join("log")).unwrap(),
        "ONE\ntwo\n"
    );
    // The sync flags cannot change after open; unknown bits are invalid.
    assert_eq!(g.call("fd_fdstat_set_flags", &[fd as i64, 16]), NOTSUP);
    assert_eq!(g.call("fd_fdstat_set_flags", &[fd as i64, 1 << 7]), INVAL);
}

#[test]
fn directories_paths_and_readdir() {
    let dir = TempDir::new("wasi-dirs");
    let mut g = guest_in(&dir);
    let (p, l) = g.path("d");
    assert_eq!(g.call("path_create_directory", &[PREOPEN, p, l]), SUCCESS);
    assert_eq!(g.call("path_create_directory", &[PREOPEN, p, l]), EXIST);
    assert!(dir.join("d").is_dir());
    for name in ["d/a", "d/bb", "d/ccc"] {
        let fd = g.open(3, name, FOLLOW, O_CREAT, ALL, 0).unwrap();
        assert_eq!(g.write_fd(fd, name.as_bytes()), Ok(name.len() as u32));
        assert_eq!(g.call("fd_close", &[fd as i64]), SUCCESS);
    }
    // readdir: everything in one big buffer.
    let d = g.open(3, "d", FOLLOW, O_DIRECTORY, DIR, 0).unwrap();
    let list = |g: &mut Guest, buf_len: u32, cookie: u64| -> (Vec<(u64, String, u8)>, u32) {
        let args = [
            d as i64,
            BUF as i64,
            buf_len as i64,
            cookie as i64,
            OUT as i64,
        ];
        assert_eq!(g.call("fd_readdir", &args), SUCCESS);
        let used = g.read_u32(OUT);
        let bytes = g.read(BUF, used);
        let mut out = Vec::new();
        let mut at = 0usize;
        while at + 24 <= bytes.len() {
            let next = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            let namlen = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
            let kind = bytes[at + 20];
            if at + 24 + namlen > bytes.len() {
                break;
            }
            let name = String::from_utf8_lossy(&bytes[at + 24..at + 24 + namlen]).into_owned();
            out.push((next, name, kind));
            at += 24 + namlen;
        }
        (out, used)
    };
    let (all, used) = list(&mut g, 4096, 0);
    assert!(used < 4096);
    let mut names: Vec<_> = all.iter().map(|(_, n, k)| (n.clone(), *k)).collect();
    names.sort();
    assert_eq!(
        names,
        [
            (".".to_string(), 3),
            ("..".to_string(), 3),
            ("a".to_string(), 4),
            ("bb".to_string(), 4),
            ("ccc".to_string(), 4)
        ]
    );
    // The same listing through a buffer that holds about one entry at a
    // time, resuming from each last complete entry's cookie.
    let mut collected = Vec::new();
    let mut cookie = 0;
    loop {
        let (part, used) = list(&mut g, 30, cookie);
        if let Some((next, _, _)) = part.last() {
            cookie = *next;
        }
        collected.extend(part.into_iter().map(|(_, n, _)| n));
        if used < 30 {
            break;
        }
    }
    let mut expected: Vec<_> = all.iter().map(|(_, n, _)| n.clone()).collect();
    assert_eq!(collected, expected);
    expected.sort();
    // Past the end: nothing.
    assert_eq!(list(&mut g, 4096, 1000).1, 0);
    assert_eq!(
        g.call("fd_readdir", &[1, BUF as i64, 64, 0, OUT as i64]),
        NOTCAPABLE
    );

    // rename, stat, unlink, rmdir.
    let (p, l) = g.path("d/a");
    let (q, m) = g.path2("d/renamed");
    assert_eq!(
        g.call("path_rename", &[PREOPEN, p, l, PREOPEN, q, m]),
        SUCCESS
    );
    assert!(dir.join("d/renamed").exists() && !dir.join("d/a").exists());
    let (p, l) = g.path("d/renamed");
    assert_eq!(
        g.call("path_filestat_get", &[PREOPEN, 1, p, l, BUF as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u64(BUF + 32), 3);
    let (p, l) = g.path("d");
    assert_eq!(g.call("path_remove_directory", &[PREOPEN, p, l]), NOTEMPTY);
    assert_eq!(g.call("path_unlink_file", &[PREOPEN, p, l]), ISDIR);
    for name in ["d/renamed", "d/bb", "d/ccc"] {
        let (p, l) = g.path(name);
        assert_eq!(
            g.call("path_unlink_file", &[PREOPEN, p, l]),
            SUCCESS,
            "{name}"
        );
    }
    let (p, l) = g.path("d/bb");
    assert_eq!(g.call("path_unlink_file", &[PREOPEN, p, l]), NOENT);
    let (p, l) = g.path("d");
    assert_eq!(g.call("path_remove_directory", &[PREOPEN, p, l]), SUCCESS);
    assert!(!dir.join("d").exists());
}

#[test]
fn links_and_times() {
    let dir = TempDir::new("wasi-links");
    std::fs::write(dir.join("target"), "content").unwrap();
    let mut g = guest_in(&dir);
    // symlink + readlink.
    let (p, l) = g.path("target");
    let (q, m) = g.path2("sym");
    assert_eq!(g.call("path_symlink", &[p, l, PREOPEN, q, m]), SUCCESS);
    let args = [PREOPEN, q, m, BUF as i64, 64, OUT as i64];
    assert_eq!(g.call("path_readlink", &args), SUCCESS);
    assert_eq!(g.read(BUF, g.read_u32(OUT)), b"target");
    assert_eq!(
        g.call("path_filestat_get", &[PREOPEN, 0, q, m, BUF as i64]),
        SUCCESS
    );
    assert_eq!(g.read(BUF + 16, 1)[0], 7);
    assert_eq!(
        g.call("path_filestat_get", &[PREOPEN, 1, q, m, BUF as i64]),
        SUCCESS
    );
    assert_eq!(g.read(BUF + 16, 1)[0], 4);
    // A hard link shares the inode.
    let (q, m) = g.path2("hard");
    assert_eq!(
        g.call("path_link", &[PREOPEN, 0, p, l, PREOPEN, q, m]),
        SUCCESS
    );
    assert_eq!(
        g.call("path_link", &[PREOPEN, 1, p, l, PREOPEN, q, m]),
        INVAL
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hard")).unwrap(),
        "content"
    );
    assert_eq!(
        g.call("path_filestat_get", &[PREOPEN, 1, p, l, BUF as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u64(BUF + 24), 2, "two links");
    // Times: by path and by fd; "now" and an explicit time.
    let when: u64 = 1_000_000_000 * 1_000_000_000; // 2001-09-09
    let set = [PREOPEN, 1, p, l, when as i64, when as i64, 1 | 4];
    assert_eq!(g.call("path_filestat_set_times", &set), SUCCESS);
    let mtime = std::fs::metadata(dir.join("target"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime.duration_since(std::time::UNIX_EPOCH).unwrap(),
        Duration::from_nanos(when)
    );
    let bad = [PREOPEN, 1, p, l, 0, 0, 1 | 2];
    assert_eq!(g.call("path_filestat_set_times", &bad), INVAL);
    let fd = g.open(3, "target", FOLLOW, 0, ALL, 0).unwrap();
    assert_eq!(
        g.call("fd_filestat_set_times", &[fd as i64, 0, 0, 8]),
        SUCCESS
    );
    let mtime = std::fs::metadata(dir.join("target"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(mtime.elapsed().unwrap_or_default() < Duration::from_secs(60));
    assert_eq!(
        g.call("fd_filestat_set_times", &[fd as i64, when as i64, 0, 1]),
        SUCCESS
    );
    let d = g.open(3, ".", FOLLOW, O_DIRECTORY, DIR, 0).unwrap();
    assert_eq!(
        g.call(
            "fd_filestat_set_times",
            &[d as i64, when as i64, when as i64, 5]
        ),
        SUCCESS
    );
    assert_eq!(g.call("fd_filestat_get", &[d as i64, BUF as i64]), SUCCESS);
    assert_eq!(g.read(BUF + 16, 1)[0], 3);
    assert_eq!(g.read_u64(BUF + 48), when);
    assert_eq!(g.call("fd_sync", &[d as i64]), SUCCESS);
}

#[test]
fn renumber_moves_descriptors() {
    let dir = TempDir::new("wasi-renumber");
    std::fs::write(dir.join("a"), "A").unwrap();
    std::fs::write(dir.join("b"), "B").unwrap();
    let mut g = guest_in(&dir);
    let a = g.open(3, "a", FOLLOW, 0, ALL, 0).unwrap();
    let b = g.open(3, "b", FOLLOW, 0, ALL, 0).unwrap();
    assert_eq!(g.call("fd_renumber", &[a as i64, b as i64]), SUCCESS);
    assert_eq!(g.read_fd(b, 10).unwrap(), b"A");
    assert_eq!(g.read_fd(a, 10), Err(BADF));
    // The lowest free number is reused.
    assert_eq!(g.open(3, "b", FOLLOW, 0, ALL, 0), Ok(a));
}

#[test]
fn descriptor_limit() {
    let dir = TempDir::new("wasi-limit");
    std::fs::write(dir.join("f"), "x").unwrap();
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopened_dir(dir.path(), "/")
            .max_fds(6)
            .build()
            .unwrap(),
    );
    assert_eq!(g.open(3, "f", FOLLOW, 0, ALL, 0), Ok(4));
    assert_eq!(g.open(3, "f", FOLLOW, 0, ALL, 0), Ok(5));
    assert_eq!(g.open(3, "f", FOLLOW, 0, ALL, 0), Err(33)); // EMFILE
}

/// Writes one subscription at `at`.
fn subscription(g: &mut Guest, at: u32, userdata: u64, tag: u8, a: u32, timeout: u64, flags: u16) {
    g.write(
        at,
        &wasi_support::subscription(userdata, tag, a, timeout, flags),
    );
}

/// `(userdata, error, type)` of each event.
fn events(g: &Guest, at: u32) -> Vec<(u64, u16, u8)> {
    let n = g.read_u32(OUT);
    (0..n)
        .map(|i| {
            let e = g.read(at + 32 * i, 32);
            (
                u64::from_le_bytes(e[0..8].try_into().unwrap()),
                u16::from_le_bytes([e[8], e[9]]),
                e[10],
            )
        })
        .collect()
}

#[test]
fn poll_oneoff_clocks_and_fds() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdin(ReadPipe::from("ready"))
            .build()
            .unwrap(),
    );
    let subs = 4096u32;
    let evs = 16384u32;
    // A relative 30 ms timeout.
    subscription(&mut g, subs, 7, 0, 1, 30_000_000, 0);
    let start = Instant::now();
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(events(&g, evs), [(7, 0, 0)]);
    // An absolute deadline 20 ms from now on the monotonic clock, and one
    // on the realtime clock that is already past.
    assert_eq!(g.call("clock_time_get", &[1, 0, OUT2 as i64]), SUCCESS);
    let now = g.read_u64(OUT2);
    subscription(&mut g, subs, 1, 0, 1, now + 20_000_000, 1);
    let start = Instant::now();
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert!(start.elapsed() >= Duration::from_millis(15));
    subscription(&mut g, subs, 2, 0, 0, 1, 1);
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert_eq!(events(&g, evs), [(2, 0, 0)]);
    // An fd that is ready wins over a long timeout; a bad fd and an
    // unknown clock are reported as events with their errno.
    subscription(&mut g, subs, 10, 0, 1, 60_000_000_000, 0);
    subscription(&mut g, subs + 48, 11, 1, 0, 0, 0);
    subscription(&mut g, subs + 96, 12, 1, 99, 0, 0);
    subscription(&mut g, subs + 144, 13, 0, 77, 0, 0);
    subscription(&mut g, subs + 192, 14, 2, 1, 0, 0);
    let start = Instant::now();
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 5, OUT as i64]),
        SUCCESS
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut got = events(&g, evs);
    got.sort();
    assert_eq!(
        got,
        [
            (11, 0, 1),
            (12, BADF as u16, 1),
            (13, INVAL as u16, 0),
            (14, 0, 2)
        ]
    );
    // An unknown subscription tag.
    subscription(&mut g, subs, 20, 9, 0, 0, 0);
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert_eq!(events(&g, evs), [(20, INVAL as u16, 0)]);
    // No subscription, or more than the host keeps records for, is EINVAL
    // (checked before the tables: nothing is read or allocated).
    for n in [0, shoal::wasi::MAX_SUBSCRIPTIONS as i64 + 1] {
        assert_eq!(
            g.call("poll_oneoff", &[subs as i64, evs as i64, n, OUT as i64]),
            INVAL,
            "{n} subscriptions"
        );
    }
}

#[test]
fn proc_exit_ends_the_instance_with_its_code() {
    let mut g = Guest::new(WasiCtx::default());
    let err = g.try_call("proc_exit", &[3]).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind, TrapKind::Exit(3));
    assert_eq!(g.ctx().exit_code(), Some(3));
    // The exit code of a whole command, from WAT.
    let module = wasi_support::module(
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start") (call $exit (i32.const 17)) unreachable))"#,
    );
    let run = wasi_support::run(&module, WasiCtx::builder(), b"");
    assert_eq!(run.result.unwrap(), 17);
}

#[test]
fn sched_yield_and_proc_raise() {
    let mut g = Guest::new(WasiCtx::default());
    assert_eq!(g.call("sched_yield", &[]), SUCCESS);
    assert_eq!(g.call("proc_raise", &[9]), NOTSUP);
}

#[test]
fn run_command_reports_what_went_wrong() {
    // No `_start`.
    let module = wasi_support::module(r#"(module (func (export "main")))"#);
    let run = wasi_support::run(&module, WasiCtx::builder(), b"");
    assert!(
        matches!(run.result, Err(shoal::Error::Export { .. })),
        "{:?}",
        run.result.err()
    );
    // An import WASI does not have.
    let module = wasi_support::module(
        r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (func (export "_start")))"#,
    );
    let run = wasi_support::run(&module, WasiCtx::builder(), b"");
    assert!(matches!(run.result, Err(shoal::Error::Link { .. })));
    // A module without memory: calls that need it fault, others work.
    let module = wasi_support::module(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (func (export "_start")
              (call $exit (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0)))))"#,
    );
    let run = wasi_support::run(&module, WasiCtx::builder(), b"");
    assert_eq!(run.result.unwrap(), FAULT);
    // `_start` returning normally is exit code 0.
    let module = wasi_support::module(r#"(module (func (export "_start")))"#);
    assert_eq!(
        wasi_support::run(&module, WasiCtx::builder(), b"")
            .result
            .unwrap(),
        0
    );
}

/// `sizes(at)` calls `args_sizes_get(at, at + 4)`; the memory is `pages`
/// pages, exported as `export` (or not at all).
fn sizes_module(pages: u32, export: Option<&str>) -> shoal::Module {
    let memory = match export {
        Some(name) => format!("(memory (export \"{name}\") {pages})"),
        None => format!("(memory {pages})"),
    };
    wasi_support::module(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
          {memory}
          (func (export "sizes") (param $at i32) (result i32)
            (call $sizes (local.get $at) (i32.add (local.get $at) (i32.const 4)))))"#
    ))
}

/// Several instances in one store (one `WasiCtx`), each with its own
/// memory, call WASI in turn: every call writes to the caller's memory,
/// checked against the caller's bounds, and an instance with no `memory`
/// export faults every time, also after the others were seen.
#[test]
fn each_instance_of_a_store_uses_its_own_memory() {
    let engine = wasi_support::engine();
    let mut linker = shoal::Linker::new(engine);
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).unwrap();
    let ctx = WasiCtx::builder()
        .args(["prog", "a1", "b22"])
        .build()
        .unwrap();
    let mut store = shoal::Store::new(engine, ctx);
    let one = linker
        .instantiate(&mut store, &sizes_module(1, Some("memory")))
        .unwrap();
    let two = linker
        .instantiate(&mut store, &sizes_module(2, Some("memory")))
        .unwrap();
    let unexported = linker
        .instantiate(&mut store, &sizes_module(1, None))
        .unwrap();
    let misnamed = linker
        .instantiate(&mut store, &sizes_module(1, Some("mem")))
        .unwrap();
    let sizes = |store: &mut shoal::Store<WasiCtx>, instance: shoal::Instance, at: i32| {
        instance
            .get_typed_func::<i32, i32>(&*store, "sizes")
            .unwrap()
            .call(&mut *store, at)
            .unwrap()
    };
    let argc = |store: &shoal::Store<WasiCtx>, instance: shoal::Instance, at: usize| {
        let memory = instance.get_memory(store, "memory").unwrap();
        let mut b = [0u8; 4];
        memory.read(store, at, &mut b).unwrap();
        u32::from_le_bytes(b)
    };
    const PAGE: i32 = 65536;
    for round in 0..3 {
        let at = 64 + 8 * round;
        assert_eq!(sizes(&mut store, one, at), SUCCESS);
        assert_eq!(sizes(&mut store, two, at + PAGE), SUCCESS, "second page");
        assert_eq!(sizes(&mut store, one, at + PAGE), FAULT, "one page only");
        assert_eq!(sizes(&mut store, unexported, at), FAULT);
        assert_eq!(sizes(&mut store, misnamed, at), FAULT);
        assert_eq!(sizes(&mut store, two, at), SUCCESS);
        assert_eq!(argc(&store, one, at as usize), 3);
        assert_eq!(argc(&store, two, at as usize), 3);
        assert_eq!(argc(&store, two, (at + PAGE) as usize), 3);
    }
    // Nothing else was written in either memory.
    assert_eq!(argc(&store, one, 200), 0);
    assert_eq!(argc(&store, two, 200), 0);
}

/// Copies stdin to stdout between `<<` and `>>`, writes a line to stderr,
/// and exits with code 5.
const STDIO_GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "<<")
  (data (i32.const 200) "to stderr\n")
  (func (export "_start")
    (local $len i32)
    (local.set $len (i32.const 2))
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 100) (local.get $len)))
        (i32.store (i32.const 4) (i32.const 1000))
        (if (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))
          (then (call $exit (i32.const 99))))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br $more)))
    (i32.store16 (i32.add (i32.const 100) (local.get $len)) (i32.const 0x3e3e))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.add (local.get $len) (i32.const 2)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 10))
    (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 5))))"#;

/// The child half of `inherited_stdio`: runs the guest on this process's
/// own stdio and exits with its code. Does nothing in a normal test run.
#[test]
fn inherited_stdio_child() {
    if std::env::var_os("SHOAL_WASI_STDIO_CHILD").is_none() {
        return;
    }
    let module = wasi_support::module(STDIO_GUEST);
    let ctx = WasiCtx::builder().inherit_stdio().build().unwrap();
    let code = shoal::wasi::run_command(wasi_support::engine(), &module, ctx).unwrap();
    std::process::exit(code);
}

#[test]
fn inherited_stdio() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "inherited_stdio_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHOAL_WASI_STDIO_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"from the parent").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("<<from the parent>>"), "{stdout}");
    assert!(stderr.contains("to stderr\n"), "{stderr}");
}
