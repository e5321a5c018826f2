//! [`WasiCtx`]: the state of one WASI guest (arguments, environment,
//! descriptors, exit code), and [`WasiCtxBuilder`], which sets it up.

use super::abi::rights;
use super::errno::Errno;
use super::fd_table::{Descriptor, DirHandle, FdEntry, FdTable, Input, Output};
use super::linker::MemoryCache;
use super::pipe::{ReadPipe, WritePipe};
use super::sock::Socket;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while setting up a [`WasiCtx`].
#[derive(Debug, thiserror::Error)]
pub enum WasiError {
    /// A preopened directory could not be opened on the host.
    #[error("cannot preopen directory `{host}`: {source}")]
    Preopen {
        host: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An argument or environment variable cannot be passed as a C string.
    #[error("{what} `{value}` contains a NUL byte, which a C string cannot hold")]
    NulByte { what: &'static str, value: String },
    /// An environment variable name is empty or contains `=`.
    #[error("environment variable name `{0}` is empty or contains `=`")]
    EnvName(String),
    /// More descriptors than the table allows.
    #[error("too many descriptors: {0}")]
    Descriptors(Errno),
}

/// How much a guest may do under a preopened directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirAccess {
    /// Read, create, write, rename and delete files and directories.
    #[default]
    ReadWrite,
    /// Open and read files, list directories, stat, read links: nothing
    /// that modifies the tree (those calls get `ENOTCAPABLE`).
    ReadOnly,
}

impl DirAccess {
    /// The preopen's `(rights_base, rights_inheriting)`.
    fn rights(self) -> (u64, u64) {
        match self {
            DirAccess::ReadWrite => (rights::DIR_ALL, rights::DIR_ALL | rights::FILE_ALL),
            DirAccess::ReadOnly => (
                rights::DIR_READ_ONLY,
                rights::DIR_READ_ONLY | rights::FILE_READ_ONLY,
            ),
        }
    }
}

/// The WASI state of one instance. Put it (or a struct holding it) in the
/// `Store`'s data and register the imports with
/// [`add_to_linker`](super::add_to_linker).
///
/// `WasiCtx::default()` has no arguments, no environment and no
/// descriptors at all (not even stdio); use [`WasiCtx::builder`].
#[derive(Debug, Default)]
pub struct WasiCtx {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: FdTable,
    pub(crate) exit_code: Option<i32>,
    /// The `"memory"` export of each calling instance (`linker.rs`).
    pub(crate) memories: MemoryCache,
}

impl WasiCtx {
    /// A builder for a context.
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::default()
    }

    /// Hands a socket to the guest; returns its fd (the lowest free
    /// number). A stream supports `fd_read`/`fd_write`, `sock_recv`,
    /// `sock_send` and `sock_shutdown`; a listener `sock_accept`.
    pub fn push_socket(&mut self, socket: impl Into<Socket>) -> Result<u32, Errno> {
        let (desc, rights) = socket.into().into_descriptor();
        self.fds.insert(FdEntry::new(desc, rights, 0))
    }

    /// The code the guest passed to `proc_exit`, once it has.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// The arguments the guest sees (`argv`).
    pub fn args(&self) -> impl Iterator<Item = &[u8]> {
        self.args.iter().map(Vec::as_slice)
    }

    /// The environment the guest sees, as `KEY=VALUE` byte strings.
    pub fn env(&self) -> impl Iterator<Item = &[u8]> {
        self.env.iter().map(Vec::as_slice)
    }

    /// The guest fds currently open.
    pub fn open_fds(&self) -> Vec<u32> {
        self.fds.fds().collect()
    }
}

struct Preopen {
    host: PathBuf,
    guest: String,
    access: DirAccess,
}

/// Builds a [`WasiCtx`]. Standard streams default to nothing (input at end
/// of file, output discarded); inherit the process's with
/// [`inherit_stdio`](Self::inherit_stdio) or capture them with pipes.
#[derive(Default)]
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Input>,
    stdout: Option<Output>,
    stderr: Option<Output>,
    preopens: Vec<Preopen>,
    sockets: Vec<Socket>,
    max_fds: Option<u32>,
}

impl WasiCtxBuilder {
    /// Appends one argument (the first is the program name, `argv[0]`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Passes the host process's environment (variables that are not valid
    /// UTF-8 are skipped).
    pub fn inherit_env(mut self) -> Self {
        self.env.extend(std::env::vars());
        self
    }

    /// Standard input reads from `pipe`.
    pub fn stdin(mut self, pipe: ReadPipe) -> Self {
        self.stdin = Some(Input::Pipe(pipe));
        self
    }

    /// Standard output goes to `pipe`.
    pub fn stdout(mut self, pipe: WritePipe) -> Self {
        self.stdout = Some(Output::Pipe(pipe));
        self
    }

    /// Standard error goes to `pipe`.
    pub fn stderr(mut self, pipe: WritePipe) -> Self {
        self.stderr = Some(Output::Pipe(pipe));
        self
    }

    /// Standard input is the process's.
    pub fn inherit_stdin(mut self) -> Self {
        self.stdin = Some(Input::Inherit);
        self
    }

    /// Standard output is the process's.
    pub fn inherit_stdout(mut self) -> Self {
        self.stdout = Some(Output::Stdout);
        self
    }

    /// Standard error is the process's.
    pub fn inherit_stderr(mut self) -> Self {
        self.stderr = Some(Output::Stderr);
        self
    }

    /// All three standard streams are the process's.
    pub fn inherit_stdio(self) -> Self {
        self.inherit_stdin().inherit_stdout().inherit_stderr()
    }

    /// Lets the guest use the host directory `host` under the name `guest`
    /// (e.g. `"/"`, `"."` or `"/data"`), read-write. Nothing outside `host`
    /// is reachable through it.
    pub fn preopened_dir(self, host: impl AsRef<Path>, guest: impl Into<String>) -> Self {
        self.preopened_dir_with(host, guest, DirAccess::ReadWrite)
    }

    /// [`preopened_dir`](Self::preopened_dir) with the given access.
    pub fn preopened_dir_with(
        mut self,
        host: impl AsRef<Path>,
        guest: impl Into<String>,
        access: DirAccess,
    ) -> Self {
        self.preopens.push(Preopen {
            host: host.as_ref().to_path_buf(),
            guest: guest.into(),
            access,
        });
        self
    }

    /// Hands a socket to the guest (after the preopens; see
    /// [`WasiCtx::push_socket`]).
    pub fn socket(mut self, socket: impl Into<Socket>) -> Self {
        self.sockets.push(socket.into());
        self
    }

    /// The most descriptors the guest may have open at once (default
    /// [`DEFAULT_MAX_FDS`](super::fd_table::DEFAULT_MAX_FDS)).
    pub fn max_fds(mut self, max: u32) -> Self {
        self.max_fds = Some(max);
        self
    }

    /// Opens the preopened directories and builds the context.
    pub fn build(self) -> Result<WasiCtx, WasiError> {
        let mut ctx = WasiCtx::default();
        if let Some(max) = self.max_fds {
            ctx.fds.set_max(max);
        }
        for arg in self.args {
            ctx.args.push(c_string("argument", arg)?);
        }
        for (key, value) in self.env {
            if key.is_empty() || key.contains('=') {
                return Err(WasiError::EnvName(key));
            }
            ctx.env
                .push(c_string("environment variable", format!("{key}={value}"))?);
        }
        let stdio = [
            Descriptor::Input(self.stdin.unwrap_or(Input::Null)),
            Descriptor::Output(self.stdout.unwrap_or(Output::Null)),
            Descriptor::Output(self.stderr.unwrap_or(Output::Null)),
        ];
        for (fd, desc) in stdio.into_iter().enumerate() {
            let rights = if fd == 0 {
                rights::STDIN
            } else {
                rights::STDOUT
            };
            ctx.fds
                .insert_at(fd as u32, FdEntry::new(desc, rights, 0))
                .map_err(WasiError::Descriptors)?;
        }
        for preopen in self.preopens {
            let dir =
                cap_std::fs::Dir::open_ambient_dir(&preopen.host, cap_std::ambient_authority())
                    .map_err(|source| WasiError::Preopen {
                        host: preopen.host.clone(),
                        source,
                    })?;
            let (base, inheriting) = preopen.access.rights();
            let desc = Descriptor::Dir(DirHandle {
                dir,
                preopen: Some(preopen.guest),
                listing: None,
            });
            ctx.fds
                .insert(FdEntry::new(desc, base, inheriting))
                .map_err(WasiError::Descriptors)?;
        }
        for socket in self.sockets {
            ctx.push_socket(socket).map_err(WasiError::Descriptors)?;
        }
        Ok(ctx)
    }
}

fn c_string(what: &'static str, value: String) -> Result<Vec<u8>, WasiError> {
    if value.contains('\0') {
        return Err(WasiError::NulByte { what, value });
    }
    Ok(value.into_bytes())
}
