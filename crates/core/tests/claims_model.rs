//! The exactly-once argument of `gcr_usage_core::claims`, explored: live deliveries (redelivered,
//! lost mid-way), batches (concurrent, overlapping, crashing between any two requests), and load
//! jobs that succeed or fail, interleaved at random one BigQuery request at a time against a
//! model of BigQuery's job ids (create-if-absent; a load job atomic). Checked:
//! - at every moment, no object is in two succeeded loads (at most once);
//! - after everything settles and one uninterrupted run goes over every object, every object is
//!   in exactly one succeeded load (exactly once).
//!
//! The actors decide only through `claims::attempt` and `claims::batch`; this file supplies the
//! requests, the crashes and the clock's "abandoned" (chosen at random: correctness must not
//! depend on it).

use std::collections::{HashMap, VecDeque};

use gcr_usage_core::claims::{self, AttemptVerdict, BatchVerdict, Holder, Status};
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// BigQuery's job ids: the first `insert` of an id wins.
#[derive(Default)]
struct JobIds(HashMap<String, Holder>);

impl JobIds {
    fn get(&self, id: &str) -> Option<Holder> {
        self.0.get(id).cloned()
    }

    fn insert(&mut self, id: &str, holder: Holder) -> bool {
        if self.0.contains_key(id) {
            return false; // 409
        }
        self.0.insert(id.to_string(), holder);
        true
    }

    fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .0
            .iter()
            .filter(|(_, h)| matches!(h, Holder::Load { status: Status::Running, .. }))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn finish(&mut self, id: &str, status: Status) {
        if let Some(Holder::Load { status: s, .. }) = self.0.get_mut(id) {
            *s = status;
        }
    }

    /// Succeeded loads per object.
    fn loads_of(&self, object: &str) -> usize {
        self.0
            .values()
            .filter(|h| matches!(h, Holder::Load { objects, status: Status::Succeeded } if objects.iter().any(|o| o == object)))
            .count()
    }
}

fn attempt_id(object: &str, k: u32) -> String {
    format!("{object}#attempt{k}")
}

/// Where an actor is with its current object.
#[derive(Clone, Debug)]
enum Look {
    /// Read the attempt's id.
    Attempt,
    /// The attempt was free: create our job there.
    Take,
    /// Read the batch that reserved the attempt.
    Batch(String),
    /// Close an abandoned batch.
    Close(String),
}

#[derive(Debug)]
enum Progress {
    Busy,
    Done,
}

/// A live event's delivery: its own load at the first attempt that lets it.
struct Live {
    object: String,
    k: u32,
    look: Look,
}

/// A batch: reserve what it can of `todo`, then create one load of exactly that.
struct Batch {
    id: String,
    todo: VecDeque<String>,
    k: u32,
    look: Look,
    reserved: Vec<String>,
}

enum Actor {
    Live(Live),
    Batch(Batch),
}

/// Where one request of an object's attempt walk left it, for both actors.
enum Walk {
    /// Still walking.
    Busy,
    /// The object's rows are in.
    Loaded,
    /// A load with the object is running (this actor's own, or another's).
    InFlight,
    /// The attempt was free and this actor's job now holds it.
    Took,
}

/// One request of the attempt walk for `object`: read / take / follow a batch / close a batch.
fn walk(ids: &mut JobIds, object: &str, k: &mut u32, look: &mut Look, mine: Holder, clock: &Clock) -> Walk {
    match look.clone() {
        Look::Attempt => match claims::attempt(object, ids.get(&attempt_id(object, *k)).as_ref()) {
            AttemptVerdict::Free => *look = Look::Take,
            AttemptVerdict::Loaded => return Walk::Loaded,
            AttemptVerdict::InFlight => return Walk::InFlight,
            AttemptVerdict::Spent => *k += 1,
            AttemptVerdict::Batch(b) => *look = Look::Batch(b),
        },
        Look::Take => {
            *look = Look::Attempt;
            if ids.insert(&attempt_id(object, *k), mine) {
                return Walk::Took;
            }
        }
        Look::Batch(b) => match claims::batch(object, ids.get(&b).as_ref(), clock.abandoned(&b)) {
            BatchVerdict::Close => *look = Look::Close(b),
            BatchVerdict::Attempt(AttemptVerdict::Spent) => {
                *k += 1;
                *look = Look::Attempt;
            }
            BatchVerdict::Attempt(AttemptVerdict::Loaded) => return Walk::Loaded,
            BatchVerdict::Attempt(_) => return Walk::InFlight,
        },
        Look::Close(b) => {
            ids.insert(&b, Holder::Tombstone);
            *look = Look::Batch(b);
        }
    }
    Walk::Busy
}

impl Live {
    /// A delivery waits for a load in flight (its own or another's) and answers once it is in.
    fn step(&mut self, ids: &mut JobIds, clock: &Clock) -> Progress {
        let mine = Holder::Load { objects: vec![self.object.clone()], status: Status::Running };
        match walk(ids, &self.object, &mut self.k, &mut self.look, mine, clock) {
            Walk::Loaded => Progress::Done,
            Walk::Busy | Walk::InFlight | Walk::Took => Progress::Busy,
        }
    }
}

impl Batch {
    fn step(&mut self, ids: &mut JobIds, clock: &Clock) -> Progress {
        let Some(object) = self.todo.front().cloned() else {
            if !self.reserved.is_empty() {
                // 409 means the batch was closed: its reservations are spent, nothing loads.
                ids.insert(&self.id, Holder::Load { objects: self.reserved.clone(), status: Status::Running });
            }
            return Progress::Done;
        };
        let mine = Holder::Reservation { batch: self.id.clone() };
        match walk(ids, &object, &mut self.k, &mut self.look, mine, clock) {
            Walk::Busy => return Progress::Busy,
            Walk::Took => self.reserved.push(object),
            // Loaded, or some other load has it in flight: not this batch's.
            Walk::Loaded | Walk::InFlight => {}
        }
        self.todo.pop_front();
        self.k = 1;
        self.look = Look::Attempt;
        Progress::Busy
    }
}

/// When a reservation counts as abandoned (in the loader: older than any batch takes to create
/// its load).
enum Clock {
    /// Any answer, at random: safety must hold whatever the clock says, a batch still at work
    /// included.
    Random(bool),
    /// A good clock, for progress: exactly the batches whose actor is gone.
    Good(Vec<String>),
}

impl Clock {
    fn abandoned(&self, batch: &str) -> bool {
        match self {
            Clock::Random(answer) => *answer,
            Clock::Good(alive) => !alive.iter().any(|b| b == batch),
        }
    }
}

struct World {
    ids: JobIds,
    actors: Vec<Actor>,
    objects: Vec<String>,
    batches: u32,
    rng: ChaCha8Rng,
}

impl World {
    fn roll(&mut self, n: u32) -> u32 {
        self.rng.next_u32() % n
    }

    fn check_at_most_once(&self) {
        for o in &self.objects {
            assert!(self.ids.loads_of(o) <= 1, "{o} loaded twice: {:?}", self.ids.0);
        }
    }

    fn new_batch(&mut self, all: bool) -> Actor {
        self.batches += 1;
        let todo = self.objects.iter().filter(|_| all || self.rng.next_u32().is_multiple_of(2)).cloned().collect();
        Actor::Batch(Batch {
            id: format!("batch{}", self.batches),
            todo,
            k: 1,
            look: Look::Attempt,
            reserved: Vec::new(),
        })
    }

    fn step_actor(&mut self, i: usize, clock: &Clock) {
        let progress = match &mut self.actors[i] {
            Actor::Live(a) => a.step(&mut self.ids, clock),
            Actor::Batch(a) => a.step(&mut self.ids, clock),
        };
        if matches!(progress, Progress::Done) {
            self.actors.swap_remove(i);
        }
    }

    /// One random event.
    fn event(&mut self) {
        match self.roll(20) {
            0..=11 if !self.actors.is_empty() => {
                let i = self.roll(self.actors.len() as u32) as usize;
                let clock = Clock::Random(self.roll(4) == 0);
                self.step_actor(i, &clock);
            }
            12..=14 => {
                let running = self.ids.running();
                if !running.is_empty() {
                    let id = running[self.roll(running.len() as u32) as usize].clone();
                    let status = if self.roll(3) == 0 { Status::Failed } else { Status::Succeeded };
                    self.ids.finish(&id, status);
                }
            }
            15 if !self.actors.is_empty() => {
                // A crash between two requests: a lost delivery, a killed batch.
                let i = self.roll(self.actors.len() as u32) as usize;
                self.actors.swap_remove(i);
            }
            16..=17 => {
                let i = self.roll(self.objects.len() as u32) as usize;
                let object = self.objects[i].clone();
                self.actors.push(Actor::Live(Live { object, k: 1, look: Look::Attempt }));
            }
            _ => {
                let batch = self.new_batch(false);
                self.actors.push(batch);
            }
        }
        self.check_at_most_once();
    }

    /// No more crashes or failures: the running loads succeed, the clock is good (a crashed
    /// batch's reservations are abandoned, a living one's are not), one batch goes over every
    /// object, and every actor still going runs to its end.
    fn settle(&mut self) {
        let last = self.new_batch(true);
        self.actors.push(last);
        for _ in 0..1_000_000 {
            for id in self.ids.running() {
                self.ids.finish(&id, Status::Succeeded);
            }
            if self.actors.is_empty() {
                return;
            }
            let alive = self
                .actors
                .iter()
                .filter_map(|a| match a {
                    Actor::Batch(b) => Some(b.id.clone()),
                    Actor::Live(_) => None,
                })
                .collect();
            let i = self.roll(self.actors.len() as u32) as usize;
            self.step_actor(i, &Clock::Good(alive));
            self.check_at_most_once();
        }
        panic!("did not settle");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_object_loads_exactly_once_whatever_the_interleaving(seed in any::<u64>(), objects in 1usize..6,
                                                                 events in 0usize..400) {
        let mut world = World {
            ids: JobIds::default(),
            actors: Vec::new(),
            objects: (0..objects).map(|i| format!("gs://logs/o{i}#g1")).collect(),
            batches: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        for _ in 0..events {
            world.event();
        }
        world.settle();
        for o in &world.objects {
            prop_assert_eq!(world.ids.loads_of(o), 1, "{} after {} events", o, events);
        }
    }
}
