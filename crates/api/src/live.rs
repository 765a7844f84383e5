//! live: the containers clients wait on before they start. docker's `run`
//! attaches and asks to wait *before* it starts the container, and must see
//! its first byte of output and its exit code even when `--rm` removes the
//! record at once. So a client that attaches to or waits on a container
//! that is not running registers a [`Feed`]; the service's `start` then
//! starts the container with its monitor connected (the CLI's way,
//! [`engine::Engine::start_attached`]) and a thread copies the monitor's
//! events to every subscriber, and its exit to every waiter. Only memory:
//! a feed lives from the first registration until the container exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use engine::attach::{AttachEvent, AttachInput, AttachStream};
use tokio::sync::{mpsc, watch};

/// Where a feed's container is.
#[derive(Clone)]
pub enum Started {
    Pending,
    /// The service is starting it, its monitor to be connected to this
    /// feed: no subscriber may go to the container directly meanwhile (it
    /// would miss the first output), however long the start takes.
    Starting,
    /// Running, its monitor connected: stdin and resizes go here.
    Running(AttachInput),
    /// The start failed (waiters learn why from [`Ended::Failed`]).
    Failed,
}

/// How a feed's container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Exit(i32),
    /// It never ran: the start's error.
    Failed(String),
}

/// Output subscribers get: the monitor's output events.
pub type Events = mpsc::Receiver<AttachEvent>;

pub struct Feed {
    subscribers: Mutex<Vec<mpsc::Sender<AttachEvent>>>,
    started: watch::Sender<Started>,
    ended: watch::Sender<Option<Ended>>,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            subscribers: Mutex::new(Vec::new()),
            started: watch::channel(Started::Pending).0,
            ended: watch::channel(None).0,
        }
    }

    /// The output from now on, and the start's news.
    pub fn subscribe(&self) -> (Events, watch::Receiver<Started>) {
        let (tx, rx) = mpsc::channel(64);
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        (rx, self.started.subscribe())
    }

    pub fn ended(&self) -> watch::Receiver<Option<Ended>> {
        self.ended.subscribe()
    }

    /// Whether nothing has started the container through this feed (nor
    /// is starting it).
    pub fn is_pending(&self) -> bool {
        matches!(*self.started.borrow(), Started::Pending)
    }

    /// Claims the start for this feed: true once, for the first caller
    /// while it is pending.
    pub fn begin_start(&self) -> bool {
        self.started.send_if_modified(|s| {
            if matches!(s, Started::Pending) {
                *s = Started::Starting;
                true
            } else {
                false
            }
        })
    }

    /// The start failed: subscribers and waiters are told, and let go.
    pub fn fail(&self, message: String) {
        self.started.send_replace(Started::Failed);
        self.ended.send_replace(Some(Ended::Failed(message)));
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The feeds of the service, by container id.
#[derive(Default)]
pub struct Live {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
}

impl Live {
    /// The feed of container `id`, made if there is none.
    pub fn feed(&self, id: &str) -> Arc<Feed> {
        self.feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Feed::new()))
            .clone()
    }

    /// The feed of container `id`, if someone waits on it.
    pub fn get(&self, id: &str) -> Option<Arc<Feed>> {
        self.feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Forgets `feed` (if it is still the one of `id`).
    pub fn remove(&self, id: &str, feed: &Arc<Feed>) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if feeds.get(id).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(id);
        }
    }

    /// Copies `stream`'s events to `feed`'s subscribers until the container
    /// exits, on a thread of its own (the monitor's socket is blocking).
    pub fn run(
        self: &Arc<Self>,
        engine: engine::Engine,
        feed: Arc<Feed>,
        mut stream: AttachStream,
    ) {
        feed.started.send_replace(Started::Running(stream.input()));
        let live = self.clone();
        std::thread::spawn(move || {
            let id = stream.container_id().to_string();
            let ended = loop {
                match stream.next_event() {
                    Ok(Some(AttachEvent::Exit(code))) => break Ended::Exit(code),
                    Ok(Some(AttachEvent::Failed(m))) => break Ended::Failed(m),
                    Ok(Some(event)) => {
                        let mut subs = feed.subscribers.lock().unwrap_or_else(|e| e.into_inner());
                        // A slow reader holds the monitor back, as it does
                        // for the CLI; a gone one is dropped.
                        subs.retain(|tx| tx.blocking_send(event.clone()).is_ok());
                    }
                    Ok(None) | Err(_) => {
                        break match engine.exit_code_after_disconnect(&id) {
                            Ok(Some(code)) => Ended::Exit(code),
                            _ => Ended::Exit(255),
                        }
                    }
                }
            };
            live.remove(&id, &feed);
            feed.ended.send_replace(Some(ended));
            // Subscribers see their channel close: their stream ends.
            feed.subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        });
    }
}
