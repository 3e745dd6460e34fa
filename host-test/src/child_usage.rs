//! What a child process cost: wall time, CPU time and peak RSS, from the kernel's own
//! accounting (`wait4`'s `rusage`), so a benchmark can report a real host's or the CLI's
//! figures without trusting the child to time itself.

use std::process::{Child, ExitStatus};
use std::time::Instant;

/// The cost of one child, from its start to its exit.
#[derive(Debug, Clone, Copy)]
pub struct ChildUsage {
    pub wall_seconds: f64,
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// Peak resident set size, KiB: `VmHWM` sampled every 5 ms while it runs (`ru_maxrss`
    /// would count the benchmark's own pages, shared with the child between fork and exec).
    pub max_rss_kib: u64,
}

impl ChildUsage {
    pub fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

/// Waits for `child` (started at `started`) with `wait4`, which hands back the child's own
/// resource usage. `Child::wait` must not be called on it afterwards.
pub fn wait_measured(child: &Child, started: Instant) -> std::io::Result<(ExitStatus, ChildUsage)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (peak, pid) = (peak.clone(), child.id());
        let ours = std::env::current_exe().ok();
        let exe = format!("/proc/{pid}/exe");
        // Until the process is gone (a reaped child has no /proc entry; a zombie no VmHWM).
        // Samples before its exec are of our own image, and skipped.
        std::thread::spawn(move || {
            while let Some(kib) = peak_rss_kib_of(pid) {
                if std::fs::read_link(&exe).ok() != ours {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data that wait4 fills in; zeroed is a valid value of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; `pid` is our own child, not yet reaped.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let _ = sampler.join();
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = ChildUsage {
        wall_seconds: started.elapsed().as_secs_f64(),
        user_seconds: seconds(usage.ru_utime),
        system_seconds: seconds(usage.ru_stime),
        max_rss_kib: peak.load(std::sync::atomic::Ordering::Relaxed),
    };
    Ok((ExitStatus::from_raw(status), usage))
}

/// CPU seconds (user + system) a live process has used so far, from `/proc/PID/stat`
/// (clock-tick resolution, 10 ms on Linux): for a server measured across one request.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 { per_second as f64 } else { 100.0 };
    // utime and stime are fields 14 and 15 of stat(5); index 0 here is field 3.
    Some((ticks(11)? + ticks(12)?) as f64 / per_second)
}

/// A live process's minor page faults so far (`minflt`, field 10 of `/proc/PID/stat`): each
/// first touch of a fresh anonymous page — memory the process allocated and the kernel zeroed.
pub fn minor_faults_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Index 0 here is field 3.
    fields.get(7)?.parse().ok()
}

/// The size of a memory page (what one minor fault zeroes).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// A live process's peak RSS so far (`VmHWM` in `/proc/PID/status`), KiB.
pub fn peak_rss_kib_of(pid: u32) -> Option<u64> {
    vm_kib(&pid.to_string(), "VmHWM")
}

/// A `Vm*` line of `/proc/PROCESS/status` (`PROCESS`: a pid or `self`), KiB; `None` without
/// procfs or once the process is gone.
pub fn vm_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}
