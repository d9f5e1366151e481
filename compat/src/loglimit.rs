//! Rate limit for repeated log lines, in the kernel's `printk_ratelimit` manner: per kind of
//! message, the first `burst` lines of each `interval` are logged, the rest counted and
//! reported as one "suppressed" line when the next one of that kind gets through, or once its
//! window is over ([`LogLimit::flush`], called when an open is released and every
//! [`INTERVAL`] by the daemon). At most one summary per kind and window: a loader looping
//! open/write/close got one "suppressed 1 similar messages" line per close when every
//! release reported at once.
//!
//! A writer looping 1-byte writes past the size limit otherwise made the daemon log one line
//! per `write(2)` (~15 000 lines/s), filling the flash of a board.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::warn;

/// `DEFAULT_RATELIMIT_INTERVAL` of the kernel (5 s).
pub const INTERVAL: Duration = Duration::from_secs(5);
/// `DEFAULT_RATELIMIT_BURST` of the kernel.
pub const BURST: u32 = 10;

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// One limiter for the daemon; keys name the kind of message ("too big", "load failed", ...).
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    burst: u32,
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(INTERVAL, BURST)
    }
}

impl LogLimit {
    pub fn new(interval: Duration, burst: u32) -> LogLimit {
        LogLimit {
            interval,
            burst,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line of kind `key` may be logged now. When a new window opens, the lines
    /// suppressed in the previous one are reported first.
    pub fn allow(&self, key: &'static str) -> bool {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let win = w.entry(key).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(win.start) >= self.interval {
            report(key, win.suppressed);
            *win = Window {
                start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if win.logged < self.burst {
            win.logged += 1;
            true
        } else {
            win.suppressed += 1;
            false
        }
    }

    /// Report the suppressed lines of every kind whose window is over and forget those
    /// windows; a window still open keeps its count (and its limit) until it ends.
    pub fn flush(&self) {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.retain(|key, win| {
            if now.saturating_duration_since(win.start) < self.interval {
                return true;
            }
            report(key, win.suppressed);
            false
        });
    }
}

fn report(key: &str, n: u64) {
    if n > 0 {
        warn!("suppressed {n} similar messages ({key})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_until_the_window_ends() {
        let l = LogLimit::new(Duration::from_millis(200), 3);
        let passed = (0..100).filter(|_| l.allow("a")).count();
        assert_eq!(passed, 3);
        assert!(l.allow("b"), "kinds are limited apart");
        let t = Instant::now();
        while !l.allow("a") {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "window never reopened"
            );
            std::thread::yield_now();
        }
        let w = l.windows.lock().unwrap();
        assert_eq!(w["a"].suppressed, 0, "reported when the new window opened");
    }

    #[test]
    fn flush_reports_only_windows_that_are_over() {
        let l = LogLimit::new(Duration::from_millis(100), 1);
        assert!(l.allow("a"));
        assert!(!l.allow("a"));
        // A flush per release within the window: no summary yet, the limit holds.
        l.flush();
        assert_eq!(l.windows.lock().unwrap()["a"].suppressed, 1);
        assert!(!l.allow("a"), "still the same window");
        let t = Instant::now();
        loop {
            l.flush();
            if !l.windows.lock().unwrap().contains_key("a") {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "window never ended");
            std::thread::yield_now();
        }
        assert!(l.allow("a"), "a new window");
    }
}
