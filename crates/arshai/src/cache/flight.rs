//! Single flight in one process: the first miss of a key calls the provider, identical
//! misses meanwhile wait (bounded) for its answer instead of calling it too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::key::CacheKey;
use super::store::Stored;

/// The state of one flight, as followers see it.
#[derive(Debug, Clone)]
pub(crate) enum FlightState {
    /// The leader is calling the provider.
    Pending,
    /// The leader finished: its answer, or `None` when it produced none that can be shared
    /// (followers then call the provider themselves).
    Done(Option<Stored>),
}

/// The flights in progress, at most `max` at once (past it, misses are not coalesced).
pub(crate) struct Flights {
    map: Mutex<HashMap<CacheKey, watch::Receiver<FlightState>>>,
    max: usize,
}

/// What joining a flight made of the caller.
pub(crate) enum Joined {
    /// The first: call the provider and [`FlightGuard::finish`].
    Leader(FlightGuard),
    /// Another call is in flight: wait on this.
    Follower(watch::Receiver<FlightState>),
    /// Too many flights: call the provider without coalescing.
    Untracked,
}

impl Flights {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            max: max.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, watch::Receiver<FlightState>>> {
        // The map only holds channel ends: a poisoned one is still consistent.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the flight of `key`, starting it if there is none.
    pub(crate) fn join(self: &Arc<Self>, key: &CacheKey) -> Joined {
        let mut map = self.lock();
        if let Some(receiver) = map.get(key) {
            return Joined::Follower(receiver.clone());
        }
        if map.len() >= self.max {
            return Joined::Untracked;
        }
        let (sender, receiver) = watch::channel(FlightState::Pending);
        map.insert(key.clone(), receiver);
        Joined::Leader(FlightGuard {
            flights: self.clone(),
            key: key.clone(),
            sender: Some(sender),
        })
    }
}

/// The leader's end of a flight. Dropping it without [`Self::finish`] (the call failed or
/// was cancelled) ends the flight with no answer.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    sender: Option<watch::Sender<FlightState>>,
}

impl FlightGuard {
    /// Ends the flight with `answer` (`None`: nothing to share).
    pub(crate) fn finish(mut self, answer: Option<Stored>) {
        self.end(answer);
    }

    fn end(&mut self, answer: Option<Stored>) {
        if let Some(sender) = self.sender.take() {
            let mut map = self.flights.lock();
            if map
                .get(&self.key)
                .is_some_and(|receiver| receiver.same_channel(&sender.subscribe()))
            {
                map.remove(&self.key);
            }
            drop(map);
            sender.send_replace(FlightState::Done(answer));
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.end(None);
    }
}
