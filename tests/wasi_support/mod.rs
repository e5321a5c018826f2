//! Helpers shared by the WASI integration tests (`tests/wasi*.rs`): a
//! temporary directory that removes itself, one engine per test binary, and
//! running a module (WAT text or wasm bytes) under WASI with captured
//! output.
#![allow(dead_code)]

use shoal::wasi::{self, ReadPipe, WasiCtx, WasiCtxBuilder, WritePipe};
use shoal::{Config, Engine, Error, Module};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A fresh directory under `std::env::temp_dir()`, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "shoal-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The engine all tests of one binary share.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(Config::default()).expect("engine"))
}

/// Compiles WAT text or wasm bytes.
pub fn module(source: impl AsRef<[u8]>) -> Module {
    Module::new(engine(), source).expect("the test module compiles")
}

/// What a run produced.
pub struct Run {
    pub result: Result<i32, Error>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The exit code, or a panic that shows the error and the output.
    pub fn code(&self) -> i32 {
        match &self.result {
            Ok(code) => *code,
            Err(e) => panic!(
                "the guest failed: {e}\nstdout:\n{}\nstderr:\n{}",
                self.stdout_str(),
                self.stderr_str()
            ),
        }
    }
}

/// Runs `module` as a command with `builder` (stdio piped: `stdin` in,
/// stdout and stderr captured).
pub fn run(module: &Module, builder: WasiCtxBuilder, stdin: &[u8]) -> Run {
    let stdout = WritePipe::new();
    let stderr = WritePipe::new();
    let ctx: WasiCtx = builder
        .stdin(ReadPipe::new(stdin.to_vec()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .build()
        .expect("the WASI context builds");
    let result = wasi::run_command(engine(), module, ctx);
    Run {
        result,
        stdout: stdout.contents(),
        stderr: stderr.contents(),
    }
}

/// Every preview1 import: name, parameter types (`true` = i64), and
/// whether it returns an errno.
pub const PREVIEW1: &[(&str, &[bool], bool)] = &[
    ("args_get", &[false, false], true),
    ("args_sizes_get", &[false, false], true),
    ("environ_get", &[false, false], true),
    ("environ_sizes_get", &[false, false], true),
    ("clock_res_get", &[false, false], true),
    ("clock_time_get", &[false, true, false], true),
    ("fd_advise", &[false, true, true, false], true),
    ("fd_allocate", &[false, true, true], true),
    ("fd_close", &[false], true),
    ("fd_datasync", &[false], true),
    ("fd_fdstat_get", &[false, false], true),
    ("fd_fdstat_set_flags", &[false, false], true),
    ("fd_fdstat_set_rights", &[false, true, true], true),
    ("fd_filestat_get", &[false, false], true),
    ("fd_filestat_set_size", &[false, true], true),
    ("fd_filestat_set_times", &[false, true, true, false], true),
    ("fd_pread", &[false, false, false, true, false], true),
    ("fd_prestat_get", &[false, false], true),
    ("fd_prestat_dir_name", &[false, false, false], true),
    ("fd_pwrite", &[false, false, false, true, false], true),
    ("fd_read", &[false, false, false, false], true),
    ("fd_readdir", &[false, false, false, true, false], true),
    ("fd_renumber", &[false, false], true),
    ("fd_seek", &[false, true, false, false], true),
    ("fd_sync", &[false], true),
    ("fd_tell", &[false, false], true),
    ("fd_write", &[false, false, false, false], true),
    ("path_create_directory", &[false, false, false], true),
    (
        "path_filestat_get",
        &[false, false, false, false, false],
        true,
    ),
    (
        "path_filestat_set_times",
        &[false, false, false, false, true, true, false],
        true,
    ),
    (
        "path_link",
        &[false, false, false, false, false, false, false],
        true,
    ),
    (
        "path_open",
        &[false, false, false, false, false, true, true, false, false],
        true,
    ),
    (
        "path_readlink",
        &[false, false, false, false, false, false],
        true,
    ),
    ("path_remove_directory", &[false, false, false], true),
    (
        "path_rename",
        &[false, false, false, false, false, false],
        true,
    ),
    ("path_symlink", &[false, false, false, false, false], true),
    ("path_unlink_file", &[false, false, false], true),
    ("poll_oneoff", &[false, false, false, false], true),
    ("proc_exit", &[false], false),
    ("proc_raise", &[false], true),
    ("sched_yield", &[], true),
    ("random_get", &[false, false], true),
    ("sock_accept", &[false, false, false], true),
    (
        "sock_recv",
        &[false, false, false, false, false, false],
        true,
    ),
    ("sock_send", &[false, false, false, false, false], true),
    ("sock_shutdown", &[false, false], true),
];

/// A module that imports every preview1 function and re-exports each under
/// its own name, with a 2-page memory: tests call WASI exactly as a guest
/// would, with arguments of their choosing.
pub fn forwarding_wat() -> String {
    let mut imports = String::new();
    let mut exports = String::new();
    for (name, params, result) in PREVIEW1 {
        let types: Vec<&str> = params
            .iter()
            .map(|&wide| if wide { "i64" } else { "i32" })
            .collect();
        let params = if types.is_empty() {
            String::new()
        } else {
            format!("(param {})", types.join(" "))
        };
        let result = if *result { "(result i32)" } else { "" };
        imports.push_str(&format!(
            "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} {params} {result}))\n"
        ));
        let gets: String = (0..types.len())
            .map(|i| format!("local.get {i} "))
            .collect();
        exports.push_str(&format!(
            "  (func (export \"{name}\") {params} {result} {gets} call ${name})\n"
        ));
    }
    format!("(module\n{imports}  (memory (export \"memory\") 2)\n{exports})")
}

/// A forwarding instance with its store: call WASI functions directly.
pub struct Guest {
    pub store: shoal::Store<WasiCtx>,
    pub instance: shoal::Instance,
    pub memory: shoal::Memory,
}

/// Where [`Guest`] helpers put their scratch data.
pub const PATH: u32 = 1024;
pub const PATH2: u32 = 1536;
pub const IOVS: u32 = 2048;
pub const OUT: u32 = 512;
pub const OUT2: u32 = 520;
pub const BUF: u32 = 8192;
pub const BUF_LEN: u32 = 32768;

impl Guest {
    pub fn new(ctx: WasiCtx) -> Guest {
        static MODULE: OnceLock<Module> = OnceLock::new();
        let module = MODULE.get_or_init(|| module(forwarding_wat()));
        let mut linker = shoal::Linker::new(engine());
        wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).expect("WASI links");
        let mut store = shoal::Store::new(engine(), ctx);
        let instance = linker
            .instantiate(&mut store, module)
            .expect("the forwarding module instantiates");
        let memory = instance
            .get_memory(&store, "memory")
            .expect("the forwarding module exports memory");
        Guest {
            store,
            instance,
            memory,
        }
    }

    /// Calls the WASI function `name`; returns its errno (0 for
    /// `proc_exit`, which traps instead).
    pub fn try_call(&mut self, name: &str, args: &[i64]) -> Result<i32, Error> {
        let (_, params, _) = PREVIEW1
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no WASI function {name}"));
        assert_eq!(
            params.len(),
            args.len(),
            "{name} takes {} arguments",
            params.len()
        );
        let vals: Vec<shoal::Val> = params
            .iter()
            .zip(args)
            .map(|(&wide, &a)| {
                if wide {
                    shoal::Val::I64(a)
                } else {
                    shoal::Val::I32(a as i32)
                }
            })
            .collect();
        let func = self
            .instance
            .get_func(&self.store, name)
            .expect("forwarded export");
        let results = func.call(&mut self.store, &vals)?;
        Ok(match results.first() {
            Some(shoal::Val::I32(errno)) => *errno,
            _ => 0,
        })
    }

    /// [`try_call`](Self::try_call) that expects no trap.
    pub fn call(&mut self, name: &str, args: &[i64]) -> i32 {
        self.try_call(name, args)
            .unwrap_or_else(|e| panic!("{name} trapped: {e}"))
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) {
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .expect("test write in bounds");
    }

    pub fn read(&self, ptr: u32, len: u32) -> Vec<u8> {
        let mut out = vec![0u8; len as usize];
        self.memory
            .read(&self.store, ptr as usize, &mut out)
            .expect("test read in bounds");
        out
    }

    pub fn read_u32(&self, ptr: u32) -> u32 {
        let b = self.read(ptr, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn read_u64(&self, ptr: u32) -> u64 {
        let b = self.read(ptr, 8);
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        u64::from_le_bytes(a)
    }

    pub fn memory_size(&self) -> u32 {
        self.memory.data_size(&self.store) as u32
    }

    pub fn ctx(&mut self) -> &mut WasiCtx {
        self.store.data_mut()
    }

    /// Writes `path` at [`PATH`]; returns `(ptr, len)`.
    pub fn path(&mut self, path: &str) -> (i64, i64) {
        self.write(PATH, path.as_bytes());
        (PATH as i64, path.len() as i64)
    }

    /// Writes `path` at [`PATH2`]; returns `(ptr, len)`.
    pub fn path2(&mut self, path: &str) -> (i64, i64) {
        self.write(PATH2, path.as_bytes());
        (PATH2 as i64, path.len() as i64)
    }

    /// `path_open` with `rights` as the base rights and every right as
    /// inheriting: the new fd, or the errno.
    pub fn open(
        &mut self,
        dir: u32,
        path: &str,
        dirflags: u32,
        oflags: u32,
        rights: u64,
        fdflags: u32,
    ) -> Result<u32, i32> {
        let (p, l) = self.path(path);
        let errno = self.call(
            "path_open",
            &[
                dir as i64,
                dirflags as i64,
                p,
                l,
                oflags as i64,
                rights as i64,
                -1, // inheriting: whatever the directory passes on
                fdflags as i64,
                OUT as i64,
            ],
        );
        if errno == 0 {
            Ok(self.read_u32(OUT))
        } else {
            Err(errno)
        }
    }

    /// `fd_write` of `data` (one iovec): bytes written, or the errno.
    pub fn write_fd(&mut self, fd: u32, data: &[u8]) -> Result<u32, i32> {
        self.write(BUF, data);
        let mut iov = Vec::new();
        iov.extend_from_slice(&BUF.to_le_bytes());
        iov.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.write(IOVS, &iov);
        match self.call("fd_write", &[fd as i64, IOVS as i64, 1, OUT as i64]) {
            0 => Ok(self.read_u32(OUT)),
            e => Err(e),
        }
    }

    /// `fd_read` of up to `len` bytes (one iovec): the bytes, or the errno.
    pub fn read_fd(&mut self, fd: u32, len: u32) -> Result<Vec<u8>, i32> {
        let mut iov = Vec::new();
        iov.extend_from_slice(&BUF.to_le_bytes());
        iov.extend_from_slice(&len.to_le_bytes());
        self.write(IOVS, &iov);
        match self.call("fd_read", &[fd as i64, IOVS as i64, 1, OUT as i64]) {
            0 => {
                let n = self.read_u32(OUT);
                Ok(self.read(BUF, n))
            }
            e => Err(e),
        }
    }
}

/// WASI errno numbers the tests check.
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const ACCES: i32 = 2;
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const EXIST: i32 = 20;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const ISDIR: i32 = 31;
    pub const LOOP: i32 = 32;
    pub const NAMETOOLONG: i32 = 37;
    pub const NOENT: i32 = 44;
    pub const NOTCONN: i32 = 53;
    pub const NOTDIR: i32 = 54;
    pub const NOTEMPTY: i32 = 55;
    pub const NOTSOCK: i32 = 57;
    pub const NOTSUP: i32 = 58;
    pub const SPIPE: i32 = 70;
    pub const NOTCAPABLE: i32 = 76;
}

/// One `poll_oneoff` subscription, as a guest lays it out: `userdata`, the
/// tag (0 clock, 1 fd read, 2 fd write), the clock id or the fd, and for a
/// clock its timeout and flags.
pub fn subscription(userdata: u64, tag: u8, id_or_fd: u32, timeout: u64, flags: u16) -> [u8; 48] {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = tag;
    s[16..20].copy_from_slice(&id_or_fd.to_le_bytes());
    s[24..32].copy_from_slice(&timeout.to_le_bytes());
    s[40..42].copy_from_slice(&flags.to_le_bytes());
    s
}

/// A connected loopback TCP pair: (the server end, the client end), the
/// client's reads timing out after 10 s so that a failing test ends.
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    (server, client)
}
