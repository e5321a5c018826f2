//! The WASI sandbox: every way out of a preopened directory fails with the
//! proper errno and touches nothing outside; rights are enforced; guest
//! pointers are bounds-checked; no argument makes the host panic.
//!
//! Layout of each test's temporary directory (under `std::env::temp_dir()`):
//!
//! ```text
//! parent/
//!   secret.txt            "top secret"          (outside the sandbox)
//!   outside_link -> secret.txt                    (outside the sandbox)
//!   sandbox/              preopened as "/sandbox" (guest fd 3)
//!     file.txt            "inside"
//!     sub/nested.txt      "nested"
//!     link_abs -> <absolute path of secret.txt>
//!     link_rel -> ../secret.txt
//!     dirlink  -> ..
//!     chain    -> sub/../../secret.txt
//!     inside_link -> file.txt
//! ```

mod wasi_support;

use shoal::wasi::{rights, DirAccess, WasiCtx};
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use wasi_support::errno::*;
use wasi_support::{Guest, TempDir, BUF, OUT, OUT2};

const PREOPEN: u32 = 3;
const FOLLOW: u32 = 1;
const O_CREAT: u32 = 1;
const O_DIRECTORY: u32 = 2;
const O_EXCL: u32 = 4;
const O_TRUNC: u32 = 8;
const ALL: u64 = u64::MAX;
const READ: u64 = rights::FD_READ | rights::FD_SEEK | rights::FD_TELL | rights::FD_FILESTAT_GET;
/// What a guest asks for when it opens a directory (no write rights: a
/// directory opened for writing is `EISDIR`, as in POSIX).
const DIR: u64 = rights::DIR_ALL | rights::FD_READ;

struct Sandbox {
    parent: TempDir,
    guest: Guest,
}

impl Sandbox {
    fn new(access: DirAccess) -> Sandbox {
        let parent = TempDir::new("wasi-sandbox");
        let p = parent.path();
        std::fs::write(p.join("secret.txt"), "top secret").unwrap();
        symlink("secret.txt", p.join("outside_link")).unwrap();
        let sb = p.join("sandbox");
        std::fs::create_dir(&sb).unwrap();
        std::fs::write(sb.join("file.txt"), "inside").unwrap();
        std::fs::create_dir(sb.join("sub")).unwrap();
        std::fs::write(sb.join("sub/nested.txt"), "nested").unwrap();
        symlink(p.join("secret.txt"), sb.join("link_abs")).unwrap();
        symlink("../secret.txt", sb.join("link_rel")).unwrap();
        symlink("..", sb.join("dirlink")).unwrap();
        symlink("sub/../../secret.txt", sb.join("chain")).unwrap();
        symlink("file.txt", sb.join("inside_link")).unwrap();
        let ctx = WasiCtx::builder()
            .preopened_dir_with(&sb, "/sandbox", access)
            .build()
            .unwrap();
        Sandbox {
            parent,
            guest: Guest::new(ctx),
        }
    }

    /// Everything outside the sandbox: names, link targets, contents.
    fn outside(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(self.parent.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "sandbox" {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                "dir".to_string()
            } else {
                std::fs::read_to_string(&path).unwrap()
            };
            out.insert(name, what);
        }
        out
    }

    fn inside(&self, rel: &str) -> std::path::PathBuf {
        self.parent.path().join("sandbox").join(rel)
    }

    fn open(&mut self, path: &str, dirflags: u32, oflags: u32, rights: u64) -> Result<u32, i32> {
        self.guest.open(PREOPEN, path, dirflags, oflags, rights, 0)
    }

    fn open_at(&mut self, dir: u32, path: &str, dirflags: u32, oflags: u32) -> Result<u32, i32> {
        let rights = if oflags & O_DIRECTORY != 0 { DIR } else { ALL };
        self.guest.open(dir, path, dirflags, oflags, rights, 0)
    }

    /// Calls a `path_*` function taking `(fd, path, len)`.
    fn path_call(&mut self, name: &str, path: &str) -> i32 {
        let (p, l) = self.guest.path(path);
        self.guest.call(name, &[PREOPEN as i64, p, l])
    }

    fn rename(&mut self, from: &str, to: &str) -> i32 {
        let (p, l) = self.guest.path(from);
        let (q, m) = self.guest.path2(to);
        let fd = PREOPEN as i64;
        self.guest.call("path_rename", &[fd, p, l, fd, q, m])
    }

    fn link(&mut self, from: &str, to: &str) -> i32 {
        let (p, l) = self.guest.path(from);
        let (q, m) = self.guest.path2(to);
        let fd = PREOPEN as i64;
        self.guest.call("path_link", &[fd, 0, p, l, fd, q, m])
    }

    fn symlink(&mut self, target: &str, link: &str) -> i32 {
        let (p, l) = self.guest.path(target);
        let (q, m) = self.guest.path2(link);
        self.guest
            .call("path_symlink", &[p, l, PREOPEN as i64, q, m])
    }

    fn stat(&mut self, path: &str, flags: u32) -> Result<u8, i32> {
        let (p, l) = self.guest.path(path);
        match self.guest.call(
            "path_filestat_get",
            &[PREOPEN as i64, flags as i64, p, l, BUF as i64],
        ) {
            0 => Ok(self.guest.read(BUF + 16, 1)[0]),
            e => Err(e),
        }
    }

    fn readlink(&mut self, path: &str, buf_len: u32) -> Result<String, i32> {
        let (p, l) = self.guest.path(path);
        let args = [PREOPEN as i64, p, l, BUF as i64, buf_len as i64, OUT as i64];
        match self.guest.call("path_readlink", &args) {
            0 => {
                let n = self.guest.read_u32(OUT);
                Ok(String::from_utf8_lossy(&self.guest.read(BUF, n)).into_owned())
            }
            e => Err(e),
        }
    }

    fn read_all(&mut self, fd: u32) -> String {
        String::from_utf8(self.guest.read_fd(fd, 4096).expect("read")).unwrap()
    }
}

#[test]
fn dotdot_cannot_leave_the_preopen() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    let before = s.outside();
    assert_eq!(s.open("../secret.txt", FOLLOW, 0, READ), Err(NOTCAPABLE));
    assert_eq!(
        s.open("sub/../../secret.txt", FOLLOW, 0, READ),
        Err(NOTCAPABLE)
    );
    assert_eq!(
        s.open("../sandbox/file.txt", FOLLOW, 0, READ),
        Err(NOTCAPABLE)
    );
    assert_eq!(s.open("..", FOLLOW, O_DIRECTORY, READ), Err(NOTCAPABLE));
    assert_eq!(
        s.open("sub/../..", FOLLOW, O_DIRECTORY, READ),
        Err(NOTCAPABLE)
    );
    // Staying inside is fine.
    let fd = s.open("sub/../file.txt", FOLLOW, 0, READ).unwrap();
    assert_eq!(s.read_all(fd), "inside");

    assert_eq!(
        s.open("../created.txt", FOLLOW, O_CREAT, ALL),
        Err(NOTCAPABLE)
    );
    assert_eq!(s.path_call("path_create_directory", "../evil"), NOTCAPABLE);
    assert_eq!(s.path_call("path_unlink_file", "../secret.txt"), NOTCAPABLE);
    assert_eq!(
        s.path_call("path_remove_directory", "../sandbox"),
        NOTCAPABLE
    );
    assert_eq!(s.rename("file.txt", "../moved.txt"), NOTCAPABLE);
    assert_eq!(s.rename("../secret.txt", "stolen.txt"), NOTCAPABLE);
    assert_eq!(s.link("../secret.txt", "hard"), NOTCAPABLE);
    assert_eq!(s.link("file.txt", "../hard"), NOTCAPABLE);
    assert_eq!(s.symlink("file.txt", "../planted"), NOTCAPABLE);
    assert_eq!(s.stat("../secret.txt", FOLLOW), Err(NOTCAPABLE));
    let (p, l) = s.guest.path("../secret.txt");
    let args = [PREOPEN as i64, FOLLOW as i64, p, l, 0, 0, 2 | 8];
    assert_eq!(s.guest.call("path_filestat_set_times", &args), NOTCAPABLE);

    assert_eq!(s.outside(), before, "something outside the sandbox changed");
    assert!(s.inside("file.txt").exists());
    assert!(!s.inside("stolen.txt").exists() && !s.inside("hard").exists());
}

#[test]
fn absolute_paths_are_refused() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    let before = s.outside();
    let secret = s.parent.path().join("secret.txt");
    let secret = secret.to_str().unwrap().to_string();
    assert_eq!(s.open("/etc/passwd", FOLLOW, 0, READ), Err(NOTCAPABLE));
    assert_eq!(s.open(&secret, FOLLOW, 0, READ), Err(NOTCAPABLE));
    // The preopen's own guest name is not a path the host resolves.
    assert_eq!(
        s.open("/sandbox/file.txt", FOLLOW, 0, READ),
        Err(NOTCAPABLE)
    );
    assert_eq!(s.open("/", FOLLOW, O_DIRECTORY, READ), Err(NOTCAPABLE));
    assert_eq!(
        s.open("/tmp/shoal-created", FOLLOW, O_CREAT, ALL),
        Err(NOTCAPABLE)
    );
    assert_eq!(
        s.path_call("path_create_directory", "/tmp/shoal-evil"),
        NOTCAPABLE
    );
    assert_eq!(s.stat("/", FOLLOW), Err(NOTCAPABLE));
    // No symlink to an absolute path can be planted either.
    assert_eq!(s.symlink("/etc/passwd", "abs"), NOTCAPABLE);
    assert_eq!(s.symlink(&secret, "abs2"), NOTCAPABLE);
    assert!(std::fs::symlink_metadata(s.inside("abs")).is_err());
    assert!(!Path::new("/tmp/shoal-created").exists());
    assert!(!Path::new("/tmp/shoal-evil").exists());
    assert_eq!(s.outside(), before);
}

#[test]
fn symlinks_cannot_lead_out() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    let before = s.outside();
    assert_eq!(s.open("link_abs", FOLLOW, 0, READ), Err(NOTCAPABLE));
    assert_eq!(s.open("link_rel", FOLLOW, 0, READ), Err(NOTCAPABLE));
    assert_eq!(s.open("chain", FOLLOW, 0, READ), Err(NOTCAPABLE));
    assert_eq!(
        s.open("dirlink/secret.txt", FOLLOW, 0, READ),
        Err(NOTCAPABLE)
    );
    // Without SYMLINK_FOLLOW the last component is not followed: ELOOP;
    // intermediate components are followed, and confined.
    assert_eq!(s.open("link_rel", 0, 0, READ), Err(LOOP));
    assert_eq!(s.open("dirlink/secret.txt", 0, 0, READ), Err(NOTCAPABLE));
    // Writing through a link that points out.
    assert_eq!(
        s.open("link_rel", FOLLOW, O_CREAT | O_TRUNC, ALL),
        Err(NOTCAPABLE)
    );
    assert_eq!(s.open("link_abs", FOLLOW, O_TRUNC, ALL), Err(NOTCAPABLE));
    // Stat follows confined, or describes the link itself.
    assert_eq!(s.stat("link_abs", FOLLOW), Err(NOTCAPABLE));
    assert_eq!(s.stat("link_abs", 0), Ok(7)); // SYMBOLIC_LINK
    assert_eq!(s.stat("inside_link", FOLLOW), Ok(4)); // REGULAR_FILE
                                                      // A link inside the sandbox works.
    let fd = s.open("inside_link", FOLLOW, 0, READ).unwrap();
    assert_eq!(s.read_all(fd), "inside");
    // A guest may plant a relative link that points out: following it is
    // confined all the same.
    assert_eq!(s.symlink("../secret.txt", "planted"), SUCCESS);
    assert_eq!(s.open("planted", FOLLOW, 0, READ), Err(NOTCAPABLE));
    // Unlinking a link removes the link, not its target.
    assert_eq!(s.path_call("path_unlink_file", "link_rel"), SUCCESS);
    assert!(std::fs::symlink_metadata(s.inside("link_rel")).is_err());
    assert_eq!(s.outside(), before);
}

#[test]
fn o_directory_tricks() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    let before = s.outside();
    let dot = s.open(".", FOLLOW, O_DIRECTORY, DIR).unwrap();
    assert_eq!(s.open_at(dot, "../secret.txt", FOLLOW, 0), Err(NOTCAPABLE));
    assert_eq!(s.open_at(dot, "..", FOLLOW, O_DIRECTORY), Err(NOTCAPABLE));
    // Every directory fd is a root of its own.
    let sub = s.open("sub", FOLLOW, O_DIRECTORY, DIR).unwrap();
    let nested = s.open_at(sub, "nested.txt", FOLLOW, 0).unwrap();
    assert_eq!(s.read_all(nested), "nested");
    assert_eq!(s.open_at(sub, "../file.txt", FOLLOW, 0), Err(NOTCAPABLE));
    assert_eq!(s.open_at(sub, "..", FOLLOW, O_DIRECTORY), Err(NOTCAPABLE));
    // Directory symlinks out of the sandbox.
    assert_eq!(s.open("dirlink", FOLLOW, O_DIRECTORY, DIR), Err(NOTCAPABLE));
    let nofollow = s.open("dirlink", 0, O_DIRECTORY, DIR);
    assert!(
        nofollow == Err(LOOP) || nofollow == Err(NOTDIR),
        "{nofollow:?}"
    );
    // A file is not a directory, and a path cannot go through one.
    assert_eq!(s.open("file.txt", FOLLOW, O_DIRECTORY, DIR), Err(NOTDIR));
    assert_eq!(s.open("file.txt/..", FOLLOW, O_DIRECTORY, DIR), Err(NOTDIR));
    let file = s.open("file.txt", FOLLOW, 0, READ).unwrap();
    assert_eq!(s.open_at(file, "x", FOLLOW, 0), Err(NOTDIR));
    // Nonsense combinations.
    assert_eq!(
        s.open("newdir", FOLLOW, O_DIRECTORY | O_CREAT, ALL),
        Err(INVAL)
    );
    assert_eq!(s.open(".", FOLLOW, 0, ALL), Err(ISDIR));
    assert_eq!(s.open(".", FOLLOW, O_DIRECTORY, ALL), Err(ISDIR));
    assert_eq!(s.open("sub/", FOLLOW, O_DIRECTORY, DIR).map(|_| ()), Ok(()));
    assert_eq!(
        s.open("file.txt", FOLLOW, O_CREAT | O_EXCL, ALL),
        Err(EXIST)
    );
    assert_eq!(s.open("", FOLLOW, 0, ALL), Err(NOENT));
    assert_eq!(s.outside(), before);
}

#[test]
fn readlink_does_not_reveal_the_outside() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    assert_eq!(s.readlink("link_abs", 256), Err(NOTCAPABLE));
    assert_eq!(s.readlink("../outside_link", 256), Err(NOTCAPABLE));
    assert_eq!(s.readlink("dirlink/outside_link", 256), Err(NOTCAPABLE));
    // A relative target is only text, and says nothing about the host.
    assert_eq!(s.readlink("link_rel", 256).as_deref(), Ok("../secret.txt"));
    // Truncated to the buffer.
    assert_eq!(s.readlink("inside_link", 4).as_deref(), Ok("file"));
    assert_eq!(s.readlink("file.txt", 256), Err(INVAL));
    assert_eq!(s.readlink("missing", 256), Err(NOENT));
}

#[test]
fn read_only_preopen() {
    let mut s = Sandbox::new(DirAccess::ReadOnly);
    let before_file = std::fs::read_to_string(s.inside("file.txt")).unwrap();
    let fd = s.open("file.txt", FOLLOW, 0, READ).unwrap();
    assert_eq!(s.read_all(fd), "inside");
    assert_eq!(s.guest.write_fd(fd, b"x"), Err(NOTCAPABLE));
    let wr = rights::FD_READ | rights::FD_WRITE;
    assert_eq!(s.open("file.txt", FOLLOW, 0, wr), Err(NOTCAPABLE));
    assert_eq!(s.open("file.txt", FOLLOW, O_TRUNC, wr), Err(NOTCAPABLE));
    assert_eq!(s.open("new.txt", FOLLOW, O_CREAT, READ), Err(NOTCAPABLE));
    assert_eq!(s.path_call("path_create_directory", "d"), NOTCAPABLE);
    assert_eq!(s.path_call("path_unlink_file", "file.txt"), NOTCAPABLE);
    assert_eq!(s.path_call("path_remove_directory", "sub"), NOTCAPABLE);
    assert_eq!(s.rename("file.txt", "other.txt"), NOTCAPABLE);
    assert_eq!(s.symlink("file.txt", "l"), NOTCAPABLE);
    assert_eq!(s.link("file.txt", "h"), NOTCAPABLE);
    // Reading the tree is allowed.
    assert_eq!(s.stat("file.txt", FOLLOW), Ok(4));
    let args = [PREOPEN as i64, BUF as i64, 4096, 0, OUT as i64];
    assert_eq!(s.guest.call("fd_readdir", &args), SUCCESS);
    assert!(s.guest.read_u32(OUT) > 0);
    // A directory opened below is read-only too.
    let sub = s.open("sub", FOLLOW, O_DIRECTORY, DIR).unwrap();
    assert_eq!(
        s.guest.open(sub, "x", FOLLOW, O_CREAT, ALL, 0),
        Err(NOTCAPABLE)
    );
    assert_eq!(
        std::fs::read_to_string(s.inside("file.txt")).unwrap(),
        before_file
    );
    assert!(!s.inside("new.txt").exists() && !s.inside("other.txt").exists());
}

#[test]
fn rights_are_enforced() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    let g = &mut s.guest;
    // Standard streams.
    assert_eq!(g.write_fd(0, b"x"), Err(NOTCAPABLE));
    assert_eq!(g.read_fd(1, 4), Err(NOTCAPABLE));
    assert_eq!(g.call("fd_seek", &[1, 0, 0, OUT as i64]), NOTCAPABLE);
    // A file opened for reading cannot be written, truncated or grown.
    let fd = g.open(PREOPEN, "file.txt", FOLLOW, 0, READ, 0).unwrap();
    assert_eq!(g.write_fd(fd, b"x"), Err(NOTCAPABLE));
    assert_eq!(g.call("fd_filestat_set_size", &[fd as i64, 0]), NOTCAPABLE);
    assert_eq!(g.call("fd_allocate", &[fd as i64, 0, 10]), NOTCAPABLE);
    // A file opened for writing cannot be read.
    let w = g
        .open(PREOPEN, "w.txt", FOLLOW, O_CREAT, rights::FD_WRITE, 0)
        .unwrap();
    assert_eq!(g.write_fd(w, b"data"), Ok(4));
    assert_eq!(g.read_fd(w, 4), Err(NOTCAPABLE));
    // Rights can be dropped, never regained.
    let rw = g.open(PREOPEN, "file.txt", FOLLOW, 0, ALL, 0).unwrap();
    let no_write = rights::FILE_ALL & !rights::FD_WRITE;
    assert_eq!(
        g.call("fd_fdstat_set_rights", &[rw as i64, no_write as i64, 0]),
        SUCCESS
    );
    assert_eq!(g.write_fd(rw, b"x"), Err(NOTCAPABLE));
    assert_eq!(
        g.call(
            "fd_fdstat_set_rights",
            &[rw as i64, rights::FILE_ALL as i64, 0]
        ),
        NOTCAPABLE
    );
    assert_eq!(g.call("fd_fdstat_get", &[rw as i64, OUT as i64]), SUCCESS);
    assert_eq!(g.read_u64(OUT + 8), no_write);
    // A directory is not read like a file.
    assert_eq!(g.read_fd(PREOPEN, 4), Err(NOTCAPABLE));
    // Descriptors that do not exist.
    assert_eq!(g.write_fd(77, b"x"), Err(BADF));
    assert_eq!(g.call("fd_close", &[77]), BADF);
    assert_eq!(g.open(77, "file.txt", FOLLOW, 0, READ, 0), Err(BADF));
    assert_eq!(g.call("fd_renumber", &[0, 77]), BADF);
    assert_eq!(g.call("fd_prestat_get", &[0, OUT as i64]), BADF);
    assert_eq!(g.call("fd_close", &[fd as i64]), SUCCESS);
    assert_eq!(g.read_fd(fd, 4), Err(BADF));
    // Path calls on something that is not a directory.
    let (p, l) = g.path("x");
    assert_eq!(g.call("path_create_directory", &[0, p, l]), NOTDIR);
    // The file stayed as it was.
    assert_eq!(
        std::fs::read_to_string(s.inside("file.txt")).unwrap(),
        "inside"
    );
}

#[test]
fn guest_pointers_are_checked() {
    let stdout = shoal::wasi::WritePipe::new();
    let stdin = shoal::wasi::ReadPipe::new(b"input".to_vec());
    let dir = TempDir::new("wasi-pointers");
    let ctx = WasiCtx::builder()
        .arg("prog")
        .env("K", "V")
        .stdin(stdin)
        .stdout(stdout.clone())
        .preopened_dir(dir.path(), "/d")
        .build()
        .unwrap();
    let mut g = Guest::new(ctx);
    let size = g.memory_size() as i64;
    let iov = |g: &mut Guest, at: u32, ptr: u32, len: u32| {
        let mut b = ptr.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        g.write(at, &b);
    };
    // iovec array, an iovec's buffer, the result pointer: each out of bounds.
    assert_eq!(g.call("fd_write", &[1, size - 4, 1, OUT as i64]), FAULT);
    iov(&mut g, 2048, (size - 2) as u32, 8);
    assert_eq!(g.call("fd_write", &[1, 2048, 1, OUT as i64]), FAULT);
    iov(&mut g, 2048, BUF, 8);
    assert_eq!(g.call("fd_write", &[1, 2048, 1, size]), FAULT);
    // An iovec table that runs past the end of memory; more iovecs than
    // IOV_MAX is EINVAL before the table is even looked at.
    assert_eq!(
        g.call("fd_write", &[1, size - 8 * 16, 1024, OUT as i64]),
        FAULT
    );
    assert_eq!(
        g.call("fd_write", &[1, 2048, u32::MAX as i64, OUT as i64]),
        INVAL
    );
    assert!(stdout.is_empty(), "a faulting write wrote something");
    // A faulting read consumes nothing.
    iov(&mut g, 2048, (size - 1) as u32, 5);
    assert_eq!(g.call("fd_read", &[0, 2048, 1, OUT as i64]), FAULT);
    assert_eq!(g.read_fd(0, 16).unwrap(), b"input");
    // Paths.
    assert_eq!(
        g.call("path_open", &[3, 1, size - 2, 10, 0, 0, 0, 0, OUT as i64]),
        FAULT
    );
    let (p, l) = g.path("should_not_exist");
    assert_eq!(
        g.call("path_open", &[3, 1, p, l, 1, -1, -1, 0, size]),
        FAULT
    );
    assert!(!dir.join("should_not_exist").exists());
    let (p, l) = g.path("nul\0byte");
    assert_eq!(
        g.call("path_open", &[3, 1, p, l, 1, -1, -1, 0, OUT as i64]),
        INVAL
    );
    // Everything else that writes through a pointer.
    assert_eq!(g.call("args_get", &[size - 2, BUF as i64]), FAULT);
    assert_eq!(g.call("args_get", &[OUT as i64, size - 3]), FAULT);
    assert_eq!(g.call("args_sizes_get", &[size, OUT as i64]), FAULT);
    assert_eq!(g.call("environ_get", &[OUT as i64, size - 1]), FAULT);
    assert_eq!(g.call("environ_sizes_get", &[OUT as i64, -1]), FAULT);
    assert_eq!(g.call("clock_time_get", &[1, 0, size - 4]), FAULT);
    assert_eq!(g.call("clock_res_get", &[1, size]), FAULT);
    assert_eq!(g.call("random_get", &[0, size + 1]), FAULT);
    assert_eq!(g.call("random_get", &[size, 0]), SUCCESS);
    assert_eq!(g.call("fd_fdstat_get", &[1, size - 8]), FAULT);
    assert_eq!(g.call("fd_filestat_get", &[3, size - 8]), FAULT);
    assert_eq!(g.call("fd_prestat_get", &[3, size - 4]), FAULT);
    assert_eq!(g.call("fd_prestat_dir_name", &[3, size - 1, 2]), FAULT);
    assert_eq!(
        g.call("fd_prestat_dir_name", &[3, BUF as i64, 1]),
        NAMETOOLONG
    );
    assert_eq!(
        g.call("fd_readdir", &[3, size - 10, 100, 0, OUT as i64]),
        FAULT
    );
    assert_eq!(g.call("fd_seek", &[3, 0, 0, size - 1]), FAULT);
    assert_eq!(
        g.call("poll_oneoff", &[0, BUF as i64, 0, OUT as i64]),
        INVAL
    );
    // More subscriptions than the host keeps records for: EINVAL before
    // the tables are looked at (a table past the end is FAULT, below).
    assert_eq!(
        g.call("poll_oneoff", &[0, BUF as i64, -1, OUT as i64]),
        INVAL
    );
    assert_eq!(
        g.call("poll_oneoff", &[size - 48, BUF as i64, 2, OUT as i64]),
        FAULT
    );
    assert_eq!(
        g.call("sock_recv", &[0, 2048, 1, 0, size, OUT2 as i64]),
        FAULT
    );
}

/// Calls every WASI function many times with arbitrary arguments (pointers
/// in and out of bounds, arbitrary fds and flags): each returns an errno
/// or succeeds, and the host never panics. Runs in a sandbox, on a guest
/// whose input is empty.
#[test]
fn arbitrary_arguments_never_panic() {
    let mut s = Sandbox::new(DirAccess::ReadWrite);
    let before = s.outside();
    let g = &mut s.guest;
    let size = g.memory_size() as u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 7;
        seed ^= seed >> 9;
        seed
    };
    let skip = [
        "proc_exit",
        "poll_oneoff",
        "sched_yield",
        "random_get",
        "fd_read",
        "sock_accept",
        "sock_recv",
    ];
    for round in 0..200 {
        for (name, params, _) in wasi_support::PREVIEW1 {
            if skip.contains(name) {
                continue;
            }
            let args: Vec<i64> = params
                .iter()
                .enumerate()
                .map(|(i, &wide)| {
                    let r = next();
                    let v = match (r >> 60, i) {
                        (0..=3, 0) => r % 8,           // a plausible fd
                        (0..=5, _) => r % size,        // in bounds
                        (6..=8, _) => size - (r % 64), // near the end
                        (9..=10, _) => u32::MAX as u64 - (r % 16),
                        _ => r,
                    };
                    if wide {
                        v as i64
                    } else {
                        v as u32 as i32 as i64
                    }
                })
                .collect();
            let result = g.try_call(name, &args);
            assert!(
                matches!(result, Ok(errno) if (0..=76).contains(&errno)),
                "round {round}: {name}{args:?} gave {result:?}"
            );
        }
    }
    assert_eq!(s.outside(), before);
}
