//! The one worker pool every multi-boot command uses: jobs run on up to N
//! threads, the results come back in the jobs' order whatever finishes
//! first, and an interrupt stops workers from taking new jobs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Runs `work` on every job with up to `workers` threads. The result for
/// job `i` is at index `i`; jobs not started because `interrupted` was set
/// are `None`.
pub fn run_pool<J, R, F>(
    jobs: Vec<J>,
    workers: usize,
    interrupted: &AtomicBool,
    work: F,
) -> Vec<Option<R>>
where
    J: Send,
    R: Send,
    F: Fn(J) -> R + Sync,
{
    let n = jobs.len();
    let mut queue: Vec<(usize, J)> = jobs.into_iter().enumerate().collect();
    queue.reverse(); // popped from the end: first job first
    let queue = Mutex::new(queue);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            scope.spawn(|| loop {
                if interrupted.load(Ordering::Relaxed) {
                    return;
                }
                let Some((i, job)) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                let r = work(job);
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn results_keep_the_job_order() {
        let stop = AtomicBool::new(false);
        let out = run_pool((0..50u64).collect(), 4, &stop, |i| {
            std::thread::sleep(std::time::Duration::from_millis((50 - i) % 7));
            i * 2
        });
        assert_eq!(out, (0..50).map(|i| Some(i * 2)).collect::<Vec<_>>());
    }

    #[test]
    fn at_most_n_run_at_once() {
        let stop = AtomicBool::new(false);
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        run_pool(vec![(); 20], 3, &stop, |()| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn an_interrupt_leaves_the_rest_unstarted() {
        let stop = AtomicBool::new(false);
        let out = run_pool((0..10).collect(), 1, &stop, |i| {
            if i == 2 {
                stop.store(true, Ordering::Relaxed);
            }
            i
        });
        assert_eq!(&out[..3], &[Some(0), Some(1), Some(2)]);
        assert!(out[3..].iter().all(Option::is_none));
    }
}
