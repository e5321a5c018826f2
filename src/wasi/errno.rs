//! WASI error numbers, and the error a call can end with.
//!
//! Every preview1 call returns an [`Errno`] (0 is success). A call can also
//! end the instance instead of returning: `proc_exit`, or a green thread
//! cancelled while it waited. [`CallError`] carries either; the linker glue
//! turns the first into the call's return value and the second into a trap.

use shoal_instance::{Trap, TrapKind};
use std::fmt;
use std::io;

macro_rules! errnos {
    ($($name:ident = $value:literal, $doc:literal;)*) => {
        /// A `wasi_snapshot_preview1` `errno` value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Errno {
            $(#[doc = $doc] $name = $value,)*
        }

        impl Errno {
            /// The POSIX-style description of this error.
            pub fn message(self) -> &'static str {
                match self {
                    $(Errno::$name => $doc,)*
                }
            }

            /// The errno with this number, if it is one.
            pub fn from_raw(raw: u16) -> Option<Errno> {
                match raw {
                    $($value => Some(Errno::$name),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    Success = 0, "no error";
    TooBig = 1, "argument list too long";
    Acces = 2, "permission denied";
    AddrInUse = 3, "address in use";
    AddrNotAvail = 4, "address not available";
    AfNoSupport = 5, "address family not supported";
    Again = 6, "resource unavailable, try again";
    Already = 7, "connection already in progress";
    Badf = 8, "bad file descriptor";
    BadMsg = 9, "bad message";
    Busy = 10, "device or resource busy";
    Canceled = 11, "operation canceled";
    Child = 12, "no child processes";
    ConnAborted = 13, "connection aborted";
    ConnRefused = 14, "connection refused";
    ConnReset = 15, "connection reset";
    Deadlk = 16, "resource deadlock would occur";
    DestAddrReq = 17, "destination address required";
    Dom = 18, "mathematics argument out of domain of function";
    Dquot = 19, "reserved (disk quota)";
    Exist = 20, "file exists";
    Fault = 21, "bad address";
    Fbig = 22, "file too large";
    HostUnreach = 23, "host is unreachable";
    Idrm = 24, "identifier removed";
    Ilseq = 25, "illegal byte sequence";
    InProgress = 26, "operation in progress";
    Intr = 27, "interrupted function";
    Inval = 28, "invalid argument";
    Io = 29, "I/O error";
    IsConn = 30, "socket is connected";
    IsDir = 31, "is a directory";
    Loop = 32, "too many levels of symbolic links";
    Mfile = 33, "file descriptor value too large";
    Mlink = 34, "too many links";
    MsgSize = 35, "message too large";
    Multihop = 36, "reserved (multihop)";
    NameTooLong = 37, "filename too long";
    NetDown = 38, "network is down";
    NetReset = 39, "connection aborted by network";
    NetUnreach = 40, "network unreachable";
    Nfile = 41, "too many files open in system";
    NoBufs = 42, "no buffer space available";
    NoDev = 43, "no such device";
    NoEnt = 44, "no such file or directory";
    NoExec = 45, "executable file format error";
    NoLck = 46, "no locks available";
    NoLink = 47, "reserved (link severed)";
    NoMem = 48, "not enough space";
    NoMsg = 49, "no message of the desired type";
    NoProtoOpt = 50, "protocol not available";
    NoSpc = 51, "no space left on device";
    NoSys = 52, "function not supported";
    NotConn = 53, "the socket is not connected";
    NotDir = 54, "not a directory or a symbolic link to a directory";
    NotEmpty = 55, "directory not empty";
    NotRecoverable = 56, "state not recoverable";
    NotSock = 57, "not a socket";
    NotSup = 58, "not supported, or operation not supported on socket";
    NoTty = 59, "inappropriate I/O control operation";
    Nxio = 60, "no such device or address";
    Overflow = 61, "value too large to be stored in data type";
    OwnerDead = 62, "previous owner died";
    Perm = 63, "operation not permitted";
    Pipe = 64, "broken pipe";
    Proto = 65, "protocol error";
    ProtoNoSupport = 66, "protocol not supported";
    ProtoType = 67, "protocol wrong type for socket";
    Range = 68, "result too large";
    Rofs = 69, "read-only file system";
    Spipe = 70, "invalid seek";
    Srch = 71, "no such process";
    Stale = 72, "reserved (stale file handle)";
    TimedOut = 73, "connection timed out";
    TxtBsy = 74, "text file busy";
    Xdev = 75, "cross-device link";
    NotCapable = 76, "capabilities insufficient";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (WASI errno {})", self.message(), *self as u16)
    }
}

impl std::error::Error for Errno {}

impl Errno {
    /// The WASI errno for a host `errno` value.
    pub fn from_host_errno(raw: i32) -> Errno {
        use libc::*;
        match raw {
            E2BIG => Errno::TooBig,
            EACCES => Errno::Acces,
            EADDRINUSE => Errno::AddrInUse,
            EADDRNOTAVAIL => Errno::AddrNotAvail,
            EAFNOSUPPORT => Errno::AfNoSupport,
            EAGAIN => Errno::Again,
            EALREADY => Errno::Already,
            EBADF => Errno::Badf,
            EBADMSG => Errno::BadMsg,
            EBUSY => Errno::Busy,
            ECANCELED => Errno::Canceled,
            ECHILD => Errno::Child,
            ECONNABORTED => Errno::ConnAborted,
            ECONNREFUSED => Errno::ConnRefused,
            ECONNRESET => Errno::ConnReset,
            EDEADLK => Errno::Deadlk,
            EDESTADDRREQ => Errno::DestAddrReq,
            EDOM => Errno::Dom,
            EDQUOT => Errno::Dquot,
            EEXIST => Errno::Exist,
            EFAULT => Errno::Fault,
            EFBIG => Errno::Fbig,
            EHOSTUNREACH => Errno::HostUnreach,
            EIDRM => Errno::Idrm,
            EILSEQ => Errno::Ilseq,
            EINPROGRESS => Errno::InProgress,
            EINTR => Errno::Intr,
            EINVAL => Errno::Inval,
            EIO => Errno::Io,
            EISCONN => Errno::IsConn,
            EISDIR => Errno::IsDir,
            ELOOP => Errno::Loop,
            EMFILE => Errno::Mfile,
            EMLINK => Errno::Mlink,
            EMSGSIZE => Errno::MsgSize,
            EMULTIHOP => Errno::Multihop,
            ENAMETOOLONG => Errno::NameTooLong,
            ENETDOWN => Errno::NetDown,
            ENETRESET => Errno::NetReset,
            ENETUNREACH => Errno::NetUnreach,
            ENFILE => Errno::Nfile,
            ENOBUFS => Errno::NoBufs,
            ENODEV => Errno::NoDev,
            ENOENT => Errno::NoEnt,
            ENOEXEC => Errno::NoExec,
            ENOLCK => Errno::NoLck,
            ENOLINK => Errno::NoLink,
            ENOMEM => Errno::NoMem,
            ENOMSG => Errno::NoMsg,
            ENOPROTOOPT => Errno::NoProtoOpt,
            ENOSPC => Errno::NoSpc,
            ENOSYS => Errno::NoSys,
            ENOTCONN => Errno::NotConn,
            ENOTDIR => Errno::NotDir,
            ENOTEMPTY => Errno::NotEmpty,
            ENOTRECOVERABLE => Errno::NotRecoverable,
            ENOTSOCK => Errno::NotSock,
            ENOTSUP => Errno::NotSup,
            ENOTTY => Errno::NoTty,
            ENXIO => Errno::Nxio,
            EOVERFLOW => Errno::Overflow,
            EOWNERDEAD => Errno::OwnerDead,
            EPERM => Errno::Perm,
            EPIPE => Errno::Pipe,
            EPROTO => Errno::Proto,
            EPROTONOSUPPORT => Errno::ProtoNoSupport,
            EPROTOTYPE => Errno::ProtoType,
            ERANGE => Errno::Range,
            EROFS => Errno::Rofs,
            ESPIPE => Errno::Spipe,
            ESRCH => Errno::Srch,
            ESTALE => Errno::Stale,
            ETIMEDOUT => Errno::TimedOut,
            ETXTBSY => Errno::TxtBsy,
            EXDEV => Errno::Xdev,
            _ => Errno::Io,
        }
    }

    /// The WASI errno for a host I/O error.
    ///
    /// cap-std reports an attempt to leave a preopened directory (`..`
    /// past its root, an absolute path, a symlink leading out) as
    /// `PermissionDenied` without an OS error number: that is
    /// [`Errno::NotCapable`], the guest lacks the capability. A real
    /// `EACCES`/`EPERM` from the host keeps its number.
    pub fn from_io(err: &io::Error) -> Errno {
        if let Some(raw) = err.raw_os_error() {
            return Errno::from_host_errno(raw);
        }
        match err.kind() {
            io::ErrorKind::PermissionDenied => Errno::NotCapable,
            io::ErrorKind::NotFound => Errno::NoEnt,
            io::ErrorKind::AlreadyExists => Errno::Exist,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => Errno::Inval,
            io::ErrorKind::WouldBlock => Errno::Again,
            io::ErrorKind::Interrupted => Errno::Intr,
            io::ErrorKind::BrokenPipe => Errno::Pipe,
            io::ErrorKind::ConnectionRefused => Errno::ConnRefused,
            io::ErrorKind::ConnectionReset => Errno::ConnReset,
            io::ErrorKind::ConnectionAborted => Errno::ConnAborted,
            io::ErrorKind::NotConnected => Errno::NotConn,
            io::ErrorKind::AddrInUse => Errno::AddrInUse,
            io::ErrorKind::AddrNotAvailable => Errno::AddrNotAvail,
            io::ErrorKind::TimedOut => Errno::TimedOut,
            io::ErrorKind::Unsupported => Errno::NotSup,
            io::ErrorKind::OutOfMemory => Errno::NoMem,
            io::ErrorKind::UnexpectedEof => Errno::Io,
            io::ErrorKind::NotADirectory => Errno::NotDir,
            io::ErrorKind::IsADirectory => Errno::IsDir,
            io::ErrorKind::DirectoryNotEmpty => Errno::NotEmpty,
            io::ErrorKind::ReadOnlyFilesystem => Errno::Rofs,
            io::ErrorKind::StorageFull => Errno::NoSpc,
            io::ErrorKind::FileTooLarge => Errno::Fbig,
            io::ErrorKind::InvalidFilename => Errno::Inval,
            io::ErrorKind::TooManyLinks => Errno::Mlink,
            io::ErrorKind::CrossesDevices => Errno::Xdev,
            io::ErrorKind::Deadlock => Errno::Deadlk,
            io::ErrorKind::ResourceBusy => Errno::Busy,
            io::ErrorKind::ExecutableFileBusy => Errno::TxtBsy,
            io::ErrorKind::NotSeekable => Errno::Spipe,
            io::ErrorKind::ArgumentListTooLong => Errno::TooBig,
            io::ErrorKind::HostUnreachable => Errno::HostUnreach,
            io::ErrorKind::NetworkUnreachable => Errno::NetUnreach,
            io::ErrorKind::NetworkDown => Errno::NetDown,
            _ => Errno::Io,
        }
    }
}

/// How a WASI call ends when it does not succeed.
#[derive(Debug)]
pub enum CallError {
    /// The call fails and returns this errno to the guest.
    Errno(Errno),
    /// The call ends the instance (`proc_exit`, or cancellation while it
    /// waited).
    Trap(Trap),
}

impl CallError {
    /// The instance was cancelled while the call waited.
    pub(crate) fn cancelled() -> CallError {
        CallError::Trap(Trap::new(TrapKind::Cancelled))
    }
}

impl From<Errno> for CallError {
    fn from(errno: Errno) -> Self {
        CallError::Errno(errno)
    }
}

impl From<Trap> for CallError {
    fn from(trap: Trap) -> Self {
        CallError::Trap(trap)
    }
}

impl From<shoal_scheduler::Cancelled> for CallError {
    fn from(_: shoal_scheduler::Cancelled) -> Self {
        CallError::cancelled()
    }
}

impl From<io::Error> for CallError {
    fn from(err: io::Error) -> Self {
        if shoal_scheduler::io::is_cancelled(&err) {
            CallError::cancelled()
        } else {
            CallError::Errno(Errno::from_io(&err))
        }
    }
}

/// The result of the implementation of one WASI call.
pub type CallResult<T = ()> = Result<T, CallError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for raw in 0..=76u16 {
            let errno = Errno::from_raw(raw).expect("every number up to 76 is an errno");
            assert_eq!(errno as u16, raw);
        }
        assert_eq!(Errno::from_raw(77), None);
    }

    #[test]
    fn io_errors_map() {
        let escape = io::Error::new(io::ErrorKind::PermissionDenied, "outside");
        assert_eq!(Errno::from_io(&escape), Errno::NotCapable);
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(Errno::from_io(&eacces), Errno::Acces);
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(Errno::from_io(&enoent), Errno::NoEnt);
    }
}
