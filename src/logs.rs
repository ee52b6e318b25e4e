//! Where log lines go: one shared buffer, written out by a thread of its
//! own in large batches.
//!
//! An access line per request is the busiest log there is (tens of
//! thousands a second under load). Written straight to stderr it costs a
//! `write` call per request; handed to a log thread one line at a time (as
//! `tracing-appender` does) it costs an allocation, a channel send and,
//! whenever the thread has drained everything, a futex wake-up and a
//! `write` per line or two. Here a line is copied into a shared buffer
//! under a mutex, nothing more. The log thread takes the whole buffer and
//! writes it in one call when it passes [`BATCH`] bytes, when a warning or
//! an error arrives, or [`LINGER`] after the first line waiting, whichever
//! comes first. So an info line reaches stderr at most about [`LINGER`]
//! late, and a warning or error at once.
//!
//! Never lossy: past [`BACKLOG`] bytes waiting (stderr blocked, say), a
//! logger waits for the thread to catch up instead of dropping lines. The
//! [`Flush`] guard writes what is left when it is dropped.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Everything a test's subscriber writes, shared with the test.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct TestSink(pub(crate) Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for TestSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A test's subscriber writes every line into the same sink.
#[cfg(test)]
impl<'a> MakeWriter<'a> for TestSink {
    type Writer = TestSink;

    fn make_writer(&'a self) -> TestSink {
        self.clone()
    }
}

pub mod json;
pub mod request;
pub mod text;

/// Bytes waiting that make the log thread write at once.
pub const BATCH: usize = 64 * 1024;
/// How long the first line waiting may wait for others to join it.
pub const LINGER: Duration = Duration::from_millis(50);
/// Bytes waiting past which loggers wait for the log thread.
pub const BACKLOG: usize = 8 * 1024 * 1024;

/// The `MakeWriter` to give `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Stops the log thread once everything waiting is written; dropping it
/// does the same.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// [`LINGER`], but for tests.
    linger: Duration,
    /// The log thread waits here for lines.
    ready: Condvar,
    /// Loggers over [`BACKLOG`] wait here for the thread to take the buffer.
    room: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// When the oldest line in `buf` arrived.
    since: Option<Instant>,
    /// A warning or error is waiting: write now.
    urgent: bool,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger cannot leave the state half-changed (it only appends
        // bytes), so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the log thread writing to `out`, named `name`.
pub fn spawn(name: &str, out: impl Write + Send + 'static) -> std::io::Result<(LogWriter, Flush)> {
    spawn_lingering(name, out, LINGER)
}

fn spawn_lingering(
    name: &str,
    out: impl Write + Send + 'static,
    linger: Duration,
) -> std::io::Result<(LogWriter, Flush)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        linger,
        ready: Condvar::new(),
        room: Condvar::new(),
    });
    let thread = std::thread::Builder::new().name(name.to_string()).spawn({
        let shared = shared.clone();
        move || write_out(&shared, out)
    })?;
    Ok((
        LogWriter {
            shared: shared.clone(),
        },
        Flush {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The log thread: waits for something worth writing, takes the buffer and
/// writes it in one call, until closed with nothing left.
fn write_out(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::new();
    loop {
        let mut state = shared.lock();
        loop {
            let due = state.since.map(|since| since + shared.linger);
            if state.urgent || state.closing || state.buf.len() >= BATCH {
                break;
            }
            if let Some(due) = due {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                state = shared
                    .ready
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            } else {
                state = shared
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let closing = state.closing;
        std::mem::swap(&mut state.buf, &mut spare);
        state.since = None;
        state.urgent = false;
        drop(state);
        shared.room.notify_all();
        if !spare.is_empty() {
            // Nowhere to report a failing stderr; the lines are dropped
            // rather than retried forever.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
        }
        if closing && shared.lock().buf.is_empty() {
            return;
        }
    }
}

/// One log line's writer (tracing's formatter writes a line in one call).
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        while state.buf.len() >= BACKLOG && !state.closing {
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = state.buf.is_empty();
        let was_short = state.buf.len() < BATCH;
        state.buf.extend_from_slice(bytes);
        if state.since.is_none() {
            state.since = Some(Instant::now());
        }
        state.urgent |= self.urgent;
        // Wake the thread only when it has something new to do: the first
        // line (to start its linger), the line that fills a batch, or an
        // urgent line. (Not every line past a full batch: each wake-up is a
        // system call, and under load many lines arrive before the thread
        // gets a core to take the batch.)
        let wake = was_empty || self.urgent || (was_short && state.buf.len() >= BATCH);
        drop(state);
        if wake {
            self.shared.ready.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Line {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.ready.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back: the bytes and the number of writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut sink = self.0.lock().unwrap();
            sink.0.extend_from_slice(bytes);
            sink.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
        /// Waits (with a deadline) until `pred` holds of the text written.
        fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !pred(&self.text()) {
                assert!(Instant::now() < deadline, "log thread never wrote {what}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn line(writer: &LogWriter, level: Level, text: &str) {
        let mut w = match level {
            Level::INFO => writer.make_writer(),
            _ => Line {
                shared: &writer.shared,
                urgent: level <= Level::WARN,
            },
        };
        w.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_are_written_in_order_and_all_of_them_by_the_guard() {
        let sink = Sink::default();
        let (writer, flush) = spawn("test-log", sink.clone()).unwrap();
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}\n")).collect();
        for l in &lines {
            line(&writer, Level::INFO, l);
        }
        drop(flush);
        assert_eq!(sink.text(), lines.concat());
        // Batched: far fewer writes than lines.
        assert!(sink.writes() < 1_000, "{} writes", sink.writes());
    }

    #[test]
    fn an_info_line_alone_is_written_after_the_linger() {
        let sink = Sink::default();
        let (writer, _flush) = spawn("test-log", sink.clone()).unwrap();
        line(&writer, Level::INFO, "quiet\n");
        sink.wait_for("the lone info line", |t| t == "quiet\n");
    }

    #[test]
    fn a_warning_is_written_at_once_with_the_lines_before_it() {
        let sink = Sink::default();
        // Lines would linger for an hour: only the warning can have them
        // written within the test's deadline.
        let (writer, _flush) = spawn_lingering("test-log", sink.clone(), HOUR).unwrap();
        line(&writer, Level::INFO, "first\n");
        line(&writer, Level::WARN, "careful\n");
        sink.wait_for("the warning", |t| t == "first\ncareful\n");
    }

    #[test]
    fn a_full_batch_is_written_without_waiting_for_the_linger() {
        let sink = Sink::default();
        let (writer, _flush) = spawn_lingering("test-log", sink.clone(), HOUR).unwrap();
        let big = "x".repeat(BATCH);
        line(&writer, Level::INFO, &big);
        sink.wait_for("the full batch", |t| t.len() == BATCH);
    }

    #[test]
    fn a_blocked_writer_holds_loggers_back_instead_of_dropping_lines() {
        /// Accepts nothing until opened.
        #[derive(Clone)]
        struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl Write for Gate {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                self.1.write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let gate = Gate(Arc::default(), sink.clone());
        let (writer, flush) = spawn("test-log", gate.clone()).unwrap();
        let chunk = "y".repeat(BACKLOG / 4);
        let logger = std::thread::spawn({
            let writer = writer.clone();
            move || {
                for _ in 0..12 {
                    line(&writer, Level::INFO, &chunk);
                }
            }
        });
        // The log thread took at most the first lines before it blocked in
        // the gate; the logger then fills the backlog and has to wait, with
        // lines still to log.
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.shared.lock().buf.len() < BACKLOG {
            assert!(Instant::now() < deadline, "the backlog never filled");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!logger.is_finished(), "a logger ran past a full backlog");
        {
            let (open, cv) = &*gate.0;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        logger.join().unwrap();
        drop(flush);
        assert_eq!(sink.text().len(), 12 * (BACKLOG / 4));
    }
}
