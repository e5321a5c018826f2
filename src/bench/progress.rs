//! A progress bar (indicatif, on stderr) for runs that last more than a
//! second.
//!
//! Workloads count their progress in an atomic counter ([`Progress::inc`]:
//! one relaxed add, cheap enough for a hot loop); a reporter thread reads
//! it ten times a second and, once the run has lasted a second, draws the
//! bar. Short runs thus print nothing, and the measured code never touches
//! the terminal. A disabled `Progress` ([`Progress::hidden`]) starts no
//! thread at all.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a run goes before its bar is drawn.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the bar is redrawn.
const REFRESH: Duration = Duration::from_millis(100);

/// A progress counter with an optional bar; see the module docs.
#[derive(Debug)]
pub struct Progress {
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reporter: Option<JoinHandle<()>>,
}

/// What the bar measures.
#[derive(Clone, Copy, Debug)]
enum Measure {
    /// `count` out of a total.
    Count(u64),
    /// Wall time out of a duration (the counter is unused).
    Time(Duration),
}

impl Progress {
    /// A counter with no bar.
    pub fn hidden() -> Progress {
        Progress {
            count: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            reporter: None,
        }
    }

    /// A bar counting to `total` (`what` is its label), drawn if `show`
    /// and the run lasts more than a second.
    pub fn count(show: bool, total: u64, what: &str) -> Progress {
        Self::start(show, Measure::Count(total), what)
    }

    /// A bar following wall time up to `duration`.
    pub fn time(show: bool, duration: Duration, what: &str) -> Progress {
        Self::start(show, Measure::Time(duration), what)
    }

    fn start(show: bool, measure: Measure, what: &str) -> Progress {
        let mut p = Progress::hidden();
        if !show {
            return p;
        }
        let (count, stop, what) = (p.count.clone(), p.stop.clone(), what.to_string());
        p.reporter = std::thread::Builder::new()
            .name("stress-progress".into())
            .spawn(move || report(measure, &count, &stop, &what))
            .ok();
        p
    }

    /// Adds `n` to the counter.
    pub fn inc(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the counter.
    pub fn set(&self, n: u64) {
        self.count.store(n, Ordering::Relaxed);
    }

    /// The counter, to share with green threads.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }

    /// Removes the bar (also done on drop).
    pub fn finish(mut self) {
        self.stop_reporter();
    }

    fn stop_reporter(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reporter.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_reporter();
    }
}

/// The reporter thread: waits [`SHOW_AFTER`], then redraws until stopped.
fn report(measure: Measure, count: &AtomicU64, stop: &AtomicBool, what: &str) {
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(REFRESH);
        let elapsed = start.elapsed();
        if elapsed < SHOW_AFTER {
            continue;
        }
        let bar = bar.get_or_insert_with(|| {
            let (len, template) = match measure {
                Measure::Count(total) => (
                    total,
                    "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec})",
                ),
                Measure::Time(d) => (d.as_millis() as u64, "{msg} [{elapsed_precise}] {wide_bar}"),
            };
            let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(template) {
                b.set_style(style);
            }
            b.set_message(what.to_string());
            b
        });
        match measure {
            Measure::Count(_) => bar.set_position(count.load(Ordering::Relaxed)),
            Measure::Time(_) => bar.set_position(elapsed.as_millis() as u64),
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
