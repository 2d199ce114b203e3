//! Guest memory accounted per VM while it runs, not per worker.
//!
//! A cell has two phases: preparing (extracting, building the agent's
//! initramfs, the disk overlay: tens of MiB at most) and booting (the
//! guest's RAM plus QEMU's own). Workers are sized by cores; a VM takes its
//! share of the memory budget only from QEMU's start to its exit, sized by
//! its own `-m`. So a matrix whose cells ask 4 GiB never overcommits the
//! host, and cells that fit run side by side while others prepare.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What QEMU itself takes beside the guest's RAM (its code, TCG's
/// translation cache, device state), MiB.
pub const QEMU_OVERHEAD_MIB: u64 = 256;

/// The share of the memory available at start that running VMs may hold.
const SHARE_PERCENT: u64 = 75;

/// How often a waiting boot looks at the interrupt flag.
const POLL: Duration = Duration::from_millis(200);

/// A budget of MiB that running VMs draw from.
#[derive(Debug)]
pub struct MemoryGate {
    budget_mib: u64,
    in_use: Mutex<u64>,
    freed: Condvar,
}

/// A running VM's share, given back when dropped.
#[derive(Debug)]
pub struct MemoryPermit<'a> {
    gate: &'a MemoryGate,
    mib: u64,
}

impl MemoryGate {
    /// A gate over `budget_mib` (at least 1).
    pub fn new(budget_mib: u64) -> MemoryGate {
        MemoryGate {
            budget_mib: budget_mib.max(1),
            in_use: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// 75% of the host's `MemAvailable` now (4 GiB when /proc/meminfo
    /// cannot be read).
    pub fn for_host() -> MemoryGate {
        let available_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_available_kib(&m))
            .unwrap_or(4 << 20);
        MemoryGate::new(available_kib / 1024 * SHARE_PERCENT / 100)
    }

    /// The budget, MiB.
    pub fn budget_mib(&self) -> u64 {
        self.budget_mib
    }

    /// What a VM with `guest_mib` of RAM draws: its RAM and QEMU's
    /// overhead, at most the whole budget (such a VM runs alone).
    fn share(&self, guest_mib: u64) -> u64 {
        guest_mib
            .saturating_add(QEMU_OVERHEAD_MIB)
            .min(self.budget_mib)
    }

    /// The share for a VM of `guest_mib`, if it fits beside the VMs running.
    pub fn try_acquire(&self, guest_mib: u64) -> Option<MemoryPermit<'_>> {
        self.take(&mut self.lock(), self.share(guest_mib))
    }

    /// Waits until a VM of `guest_mib` fits; `None` once `interrupted` is
    /// set while waiting.
    pub fn acquire(&self, guest_mib: u64, interrupted: &AtomicBool) -> Option<MemoryPermit<'_>> {
        let mib = self.share(guest_mib);
        let mut used = self.lock();
        loop {
            if interrupted.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(permit) = self.take(&mut used, mib) {
                return Some(permit);
            }
            used = match self.freed.wait_timeout(used, POLL) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// MiB held by running VMs now.
    pub fn in_use_mib(&self) -> u64 {
        *self.lock()
    }

    /// `mib` more in use, when that stays within the budget.
    fn take(&self, used: &mut u64, mib: u64) -> Option<MemoryPermit<'_>> {
        (*used + mib <= self.budget_mib).then(|| {
            *used += mib;
            MemoryPermit { gate: self, mib }
        })
    }

    /// The in-use count (a panic elsewhere while holding it leaves a valid
    /// number: every update is one assignment).
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for MemoryPermit<'_> {
    fn drop(&mut self) {
        let mut used = self.gate.lock();
        *used = used.saturating_sub(self.mib);
        self.gate.freed.notify_all();
    }
}

/// `MemAvailable` from /proc/meminfo's text, KiB.
fn mem_available_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vms_draw_their_own_size_and_give_it_back() {
        let gate = MemoryGate::new(3 * 1280);
        let a = gate.try_acquire(1024).expect("first fits");
        let b = gate.try_acquire(1024).expect("second fits");
        assert_eq!(gate.in_use_mib(), 2 * 1280);
        assert!(
            gate.try_acquire(2048).is_none(),
            "2 GiB + QEMU does not fit"
        );
        let c = gate.try_acquire(1024).expect("a third 1 GiB VM fits");
        assert!(gate.try_acquire(1).is_none(), "the budget is spent");
        drop((a, b));
        assert_eq!(gate.in_use_mib(), 1280);
        assert!(gate.try_acquire(2048).is_some(), "fits once two ended");
        drop(c);
        assert_eq!(gate.in_use_mib(), 0);
    }

    #[test]
    fn a_vm_larger_than_the_budget_runs_alone() {
        let gate = MemoryGate::new(2000);
        let small = gate.try_acquire(512).unwrap();
        assert!(gate.try_acquire(8192).is_none(), "waits for the running VM");
        drop(small);
        let big = gate.try_acquire(8192).expect("alone, it runs");
        assert_eq!(gate.in_use_mib(), 2000);
        assert!(gate.try_acquire(1).is_none());
        drop(big);
    }

    #[test]
    fn a_waiting_boot_starts_when_memory_is_freed_or_gives_up_on_interrupt() {
        let gate = MemoryGate::new(1280);
        let stop = AtomicBool::new(false);
        let first = gate.acquire(1024, &stop).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.acquire(1024, &stop).map(|p| p.mib));
            drop(first);
            assert_eq!(waiter.join().unwrap(), Some(1280));
        });
        let held = gate.acquire(1024, &stop).unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(gate.acquire(1024, &stop).is_none());
        drop(held);
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available_kib(m), Some(20_000_000));
        assert_eq!(mem_available_kib("MemTotal: 1 kB\n"), None);
    }
}
