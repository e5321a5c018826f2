//! `clock_time_get` and `clock_res_get`, and the clock reading
//! `poll_oneoff` uses for its deadlines.

use super::abi::clockid;
use super::errno::{CallResult, Errno};
use super::guest_memory::GuestMemory;
use super::WasiCtx;

/// The host clock for a WASI clock id (`EINVAL` for an unknown id).
fn host_clock(id: u32) -> Result<libc::clockid_t, Errno> {
    match id {
        clockid::REALTIME => Ok(libc::CLOCK_REALTIME),
        clockid::MONOTONIC => Ok(libc::CLOCK_MONOTONIC),
        clockid::PROCESS_CPUTIME_ID => Ok(libc::CLOCK_PROCESS_CPUTIME_ID),
        clockid::THREAD_CPUTIME_ID => Ok(libc::CLOCK_THREAD_CPUTIME_ID),
        _ => Err(Errno::Inval),
    }
}

fn timespec_nanos(ts: &libc::timespec) -> u64 {
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64)
}

/// The current time of WASI clock `id`, in nanoseconds.
pub fn now(id: u32) -> Result<u64, Errno> {
    let clock = host_clock(id)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(Errno::from_host_errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    Ok(timespec_nanos(&ts))
}

/// The resolution of WASI clock `id`, in nanoseconds.
pub fn resolution(id: u32) -> Result<u64, Errno> {
    let clock = host_clock(id)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_getres(clock, &mut ts) } != 0 {
        return Err(Errno::from_host_errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    Ok(timespec_nanos(&ts).max(1))
}

/// `clock_res_get(id, resolution)`.
pub fn clock_res_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    id: u32,
    out: u32,
) -> CallResult {
    let res = resolution(id)?;
    mem.write_u64(out, res)?;
    Ok(())
}

/// `clock_time_get(id, precision, time)`: the precision hint is ignored.
pub fn clock_time_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    id: u32,
    _precision: u64,
    out: u32,
) -> CallResult {
    let time = now(id)?;
    mem.write_u64(out, time)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance() {
        let a = now(clockid::MONOTONIC).unwrap();
        let b = now(clockid::MONOTONIC).unwrap();
        assert!(b >= a);
        assert!(now(clockid::REALTIME).unwrap() > 1_600_000_000_000_000_000);
        assert_eq!(now(4), Err(Errno::Inval));
        assert!(resolution(clockid::MONOTONIC).unwrap() >= 1);
    }
}
