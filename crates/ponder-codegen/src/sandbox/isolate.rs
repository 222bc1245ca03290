//! The isolation of a sample's process, applied in the child between `fork` and `exec`, and the
//! reaper that kills whatever a sample left running. The crate's only unsafe code: both run in a
//! freshly forked child of a multi-threaded process, where only system calls are safe, so they
//! make nothing but system calls (no allocation, no locks) and prepare every string beforehand.
//!
//! In order, the child: enters new network, mount, IPC and UTS namespaces (no network at all, not
//! even loopback); makes its mounts private and the whole tree read-only and nosuid; mounts a
//! fresh size-limited tmpfs on `/tmp`, owned by the sample's uid, and works there; sets its
//! resource limits; drops to the sample's unprivileged uid and gid with no supplementary groups;
//! forbids gaining privileges again; and asks to be killed if its parent thread dies.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{chdir, fork, setgid, setgroups, setuid, ForkResult, Gid, Pid, Uid};

/// The steps of the isolation, in the order the child takes them; a probe stops after one of
/// them, so that the step a kernel refuses can be named.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Step {
    /// New network, mount, IPC and UTS namespaces.
    Namespaces,
    /// Private mounts and the sample's tmpfs on `/tmp`.
    Mounts,
    /// Every other mount read-only and nosuid.
    ReadOnlyRoot,
    /// The unprivileged uid and gid.
    Identity,
}

impl Step {
    /// Every step, in order.
    pub(crate) const ALL: [Step; 4] = [
        Step::Namespaces,
        Step::Mounts,
        Step::ReadOnlyRoot,
        Step::Identity,
    ];

    /// What the step does, for the message when a kernel refuses it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Step::Namespaces => "new network, mount, IPC and UTS namespaces (unshare)",
            Step::Mounts => "a private mount tree with a tmpfs working directory (mount)",
            Step::ReadOnlyRoot => "a read-only mount tree (mount_setattr, Linux 5.12 or later)",
            Step::Identity => "an unprivileged uid and gid (setuid)",
        }
    }
}

/// Everything the child needs, prepared in the parent.
pub(crate) struct Plan {
    /// The last isolation step to take; `None` applies the resource limits only.
    pub isolate_to: Option<Step>,
    /// The sample's uid and gid (never 0).
    pub uid: u32,
    /// The tmpfs's mount options (size, inodes, owner, mode).
    pub tmpfs_options: CString,
    /// Resource limits: resource, soft, hard.
    pub limits: Vec<(Resource, u64, u64)>,
}

impl Plan {
    fn apply(&self) -> io::Result<()> {
        let at = |step: Step| self.isolate_to.is_some_and(|last| last >= step);
        if at(Step::Namespaces) {
            unshare(
                CloneFlags::CLONE_NEWNET
                    | CloneFlags::CLONE_NEWNS
                    | CloneFlags::CLONE_NEWIPC
                    | CloneFlags::CLONE_NEWUTS,
            )?;
        }
        if at(Step::Mounts) {
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
        }
        if at(Step::ReadOnlyRoot) {
            read_only_tree(c"/")?;
        }
        if at(Step::Mounts) {
            mount(
                Some("tmpfs"),
                "/tmp",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(self.tmpfs_options.as_c_str()),
            )?;
            chdir("/tmp")?;
        }
        for &(resource, soft, hard) in &self.limits {
            setrlimit(resource, soft, hard)?;
        }
        if at(Step::Identity) {
            setgroups(&[])?;
            setgid(Gid::from_raw(self.uid))?;
            setuid(Uid::from_raw(self.uid))?;
        }
        nix::sys::prctl::set_no_new_privs()?;
        // After the uid change, which clears it.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        Ok(())
    }
}

/// Makes `cmd`'s child carry out `plan` before it executes its program.
pub(crate) fn install(cmd: &mut Command, plan: Plan) {
    // SAFETY: `Plan::apply` runs between fork and exec and only makes system calls on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || plan.apply());
    }
}

/// Makes every mount under `path` read-only and nosuid, recursively, in one call.
fn read_only_tree(path: &CStr) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a plain system call with a valid path and a properly sized attribute struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Kills every process that runs as `uid`: what a sample left behind after its own process ended
/// (daemons that left its process group included). A forked child takes the uid and sends
/// SIGKILL to every process it may signal, which is exactly that uid's processes.
pub(crate) fn kill_every_process_of(uid: u32) -> io::Result<()> {
    if uid == 0 {
        return Err(io::Error::other("refusing to kill the processes of uid 0"));
    }
    // SAFETY: the child only makes system calls and leaves with `_exit`.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match setuid(Uid::from_raw(uid)) {
                Ok(()) => {
                    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                    0
                }
                Err(_) => 1,
            };
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            waitpid(child, None)?;
            Ok(())
        }
    }
}
