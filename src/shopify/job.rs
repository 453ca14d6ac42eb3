//! Following Shopify's asynchronous jobs. Some mutations (`orderCancel`) answer with a job, not a
//! result: the work happens after the answer. [`follow`] polls until the job is finished, waiting
//! longer each time within a bound; a job still running at the end of the bound is a transient
//! failure, so the outbox runs the call again later instead of calling it done.

use std::future::Future;
use std::time::Duration;

use crate::remote::CallError;

/// How long and how often to poll a job: the first wait, doubling up to `max_delay`, until
/// `total` has been waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobWait {
    pub first: Duration,
    pub max_delay: Duration,
    pub total: Duration,
}

impl Default for JobWait {
    /// About a dozen polls over 30 s: a cancellation normally finishes within seconds.
    fn default() -> Self {
        Self { first: Duration::from_millis(250), max_delay: Duration::from_secs(4), total: Duration::from_secs(30) }
    }
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState<T> {
    Running,
    Finished(T),
}

/// Polls (`poll`) until the job is finished and returns what it finished with. A poll that fails
/// ends the wait with that failure; `what` names the job in the transient error of a job that
/// does not finish in time.
pub async fn follow<T, F, Fut>(wait: &JobWait, what: &str, mut poll: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<JobState<T>, CallError>>,
{
    let (mut delay, mut waited) = (wait.first, Duration::ZERO);
    while waited < wait.total {
        let pause = delay.min(wait.total - waited);
        tokio::time::sleep(pause).await;
        waited += pause;
        if let JobState::Finished(outcome) = poll().await? {
            return Ok(outcome);
        }
        delay = (delay * 2).min(wait.max_delay);
    }
    Err(CallError::transient(format!(
        "{what} is still running on Shopify after {} s; it is checked again on the next attempt",
        waited.as_secs()
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> JobWait {
        JobWait {
            first: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            total: Duration::from_millis(40),
        }
    }

    #[tokio::test]
    async fn polls_until_the_job_is_finished() {
        let polls = AtomicU32::new(0);
        let outcome = follow(&quick(), "job 1", || async {
            let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(if n == 3 { JobState::Finished("done") } else { JobState::Running })
        })
        .await;
        assert_eq!((outcome, polls.load(Ordering::SeqCst)), (Ok("done"), 3));
    }

    #[tokio::test]
    async fn a_job_that_never_finishes_is_a_transient_failure_within_the_bound() {
        let polls = AtomicU32::new(0);
        let outcome: Result<(), _> = follow(&quick(), "the cancellation of order 7", || async {
            polls.fetch_add(1, Ordering::SeqCst);
            Ok(JobState::Running)
        })
        .await;
        match outcome {
            Err(CallError::Transient { message, .. }) => assert!(message.contains("order 7"), "{message}"),
            other => panic!("{other:?}"),
        }
        // 1 + 2 + 4 + 4 + ... ms up to 40 ms: a bounded number of polls, not a busy loop.
        let n = polls.load(Ordering::SeqCst);
        assert!((5..=12).contains(&n), "{n} polls");
    }

    #[tokio::test]
    async fn a_failing_poll_ends_the_wait() {
        let outcome: Result<(), _> =
            follow(&quick(), "job", || async { Err(CallError::Refused { message: "gone".into() }) }).await;
        assert_eq!(outcome, Err(CallError::Refused { message: "gone".into() }));
    }
}
