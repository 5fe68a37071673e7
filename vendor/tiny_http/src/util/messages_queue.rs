use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

enum Control<T> {
    Elem(T),
    Unblock,
}

pub struct MessagesQueue<T>
where
    T: Send,
{
    queue: Mutex<VecDeque<Control<T>>>,
    condvar: Condvar,
}

impl<T> MessagesQueue<T>
where
    T: Send,
{
    pub fn with_capacity(capacity: usize) -> Arc<MessagesQueue<T>> {
        Arc::new(MessagesQueue {
            queue: Mutex::new(VecDeque::with_capacity(capacity)),
            condvar: Condvar::new(),
        })
    }

    /// Pushes an element to the queue.
    pub fn push(&self, value: T) {
        let mut queue = self.queue.lock().unwrap();
        queue.push_back(Control::Elem(value));
        self.condvar.notify_one();
    }

    /// Unblock one thread stuck in pop loop.
    pub fn unblock(&self) {
        let mut queue = self.queue.lock().unwrap();
        queue.push_back(Control::Unblock);
        self.condvar.notify_one();
    }

    /// Pops an element. Blocks until one is available.
    /// Returns None in case unblock() was issued.
    pub fn pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();

        loop {
            match queue.pop_front() {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }

            queue = self.condvar.wait(queue).unwrap();
        }
    }

    /// Tries to pop an element without blocking.
    pub fn try_pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();
        match queue.pop_front() {
            Some(Control::Elem(value)) => Some(value),
            Some(Control::Unblock) | None => None,
        }
    }

    /// Tries to pop an element without blocking
    /// more than the specified timeout duration
    /// or unblock() was issued
    ///
    /// askgate patch: the queue is read again after every wake-up, a
    /// timeout included, and `None` only when it is empty at the deadline.
    /// Upstream returned `None` when the wake-up came within a millisecond
    /// of the deadline (or was scheduled after it), leaving the element it
    /// was woken for in the queue, its `notify_one` spent: a thread blocked
    /// in `pop` never heard of it.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut queue = self.queue.lock().unwrap();
        loop {
            match queue.pop_front() {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())?;
            queue = self.condvar.wait_timeout(queue, left).unwrap().0;
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::MessagesQueue;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    /// True once thread `tid` of this process sleeps (`S` in its stat).
    fn sleeping(tid: &str) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"));
        let state = stat.ok().and_then(|stat| {
            let (_, rest) = stat.rsplit_once(") ")?;
            rest.chars().next()
        });
        state == Some('S')
    }

    #[test]
    fn an_element_pushed_before_the_deadline_is_popped_even_if_the_wake_up_comes_after_it() {
        // A spare waits with a timeout while nothing else pops; an element
        // is pushed (its notification going to the spare) before the
        // deadline, but the spare gets the lock back only after it, as a
        // busy machine schedules it.
        let queue = MessagesQueue::<u32>::with_capacity(1);
        let timeout = Duration::from_millis(300);
        let (started, start) = mpsc::channel();
        let spare = {
            let queue = queue.clone();
            thread::spawn(move || {
                let tid = std::fs::read_link("/proc/thread-self").unwrap();
                let tid = tid.file_name().unwrap().to_string_lossy().to_string();
                started.send((tid, Instant::now())).unwrap();
                queue.pop_timeout(timeout)
            })
        };
        let (tid, began) = start.recv().unwrap();
        // Nothing else holds the lock: the spare sleeps only in its wait.
        let patience = Instant::now() + Duration::from_secs(30);
        while !sleeping(&tid) {
            assert!(Instant::now() < patience, "the spare never waited");
            thread::yield_now();
        }
        {
            let mut held = queue.queue.lock().unwrap();
            assert!(began.elapsed() < timeout, "pushed before the deadline");
            held.push_back(super::Control::Elem(7));
            queue.condvar.notify_one();
            // The lock is held past the deadline: the spare wakes late.
            thread::sleep((timeout + Duration::from_millis(20)).saturating_sub(began.elapsed()));
        }
        assert_eq!(spare.join().unwrap(), Some(7));
        assert!(queue.try_pop().is_none());
    }
}
