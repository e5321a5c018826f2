//! A panic hook that records panics instead of printing them, so that a
//! panic caught inside one directive becomes that directive's failure
//! message (with its location) rather than noise on stderr.

use std::cell::RefCell;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook. With `echo`, panics are also printed to stderr (with
/// a backtrace if `RUST_BACKTRACE` asks for one).
pub fn install(echo: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(a non-string payload)".to_string()
        };
        let location = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        LAST.with(|last| *last.borrow_mut() = Some(format!("{message}{location}")));
        if echo {
            previous(info);
        }
    }));
}

/// The last panic recorded on this thread, if any (and forgets it).
pub fn take_last() -> Option<String> {
    LAST.with(|last| last.borrow_mut().take())
}
