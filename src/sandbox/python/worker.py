# rl4qe sandbox worker ("zygote"): imports the heavy data-science stack once, then for each request
# forks a fresh child that runs one untrusted program under limits and reports a structured result.
#
# Protocol: one JSON request per line on stdin, one JSON reply per line on stdout (nothing else is
# ever written to stdout: children redirect their fds 1 and 2 before running anything).
#   {"id": 7, "mode": "ds1000", "context": "...", "solution": "...", "limits": {...}}
#   {"id": 8, "mode": "script", "code": "...", "limits": {...}}
#   -> {"id": 7, "status": "pass|fail|syntax_error|timeout|memory|crash|sandbox_error",
#       "seconds": 0.12, "stderrTail": "...", "errorType": "AssertionError"}
# The first line the worker writes is {"ready": true, ...} once its imports are done.
#
# Isolation (see docs/sandbox.md): the Node side usually starts this file inside bubblewrap (no
# network, private filesystem view, own pid namespace). Here, per test: a fresh working directory,
# rlimits (CPU, address space, processes, open files, file size), a private unprivileged uid per
# worker when we are root (so the test cannot signal or ptrace this process, and every process it
# leaves behind can be found and killed by uid), its own session/process group, and a reaper that
# kills everything the test started once it ends.
import ctypes
import errno
import json
import os
import resource
import select
import shutil
import signal
import stat
import sys
import time
import traceback

PROTO_OUT = sys.stdout.buffer
STDIN = sys.stdin.buffer
ARGS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
WORK_ROOT = ARGS.get("workRoot") or "/tmp"
RUN_UID = ARGS.get("uid")  # int or None: drop to this uid/gid in children (only when root)
PRELOAD = ARGS.get("preload", True)
UNSHARE_NET = ARGS.get("unshareNet", False)  # ask this process to unshare its network itself
TAIL_BYTES = 4096
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)


def send(obj):
    PROTO_OUT.write((json.dumps(obj) + "\n").encode())
    PROTO_OUT.flush()


# --- setup before the heavy imports ---------------------------------------------------------------

notes = []
# Fail closed: isolation that was asked for and could not be had refuses every test (status
# sandbox_error with this reason) instead of running with the network on or with more privilege.
# SIMULATE lets the tests exercise these paths on a machine where they work.
SIMULATE = set(ARGS.get("simulate") or [])
REFUSE = None
if UNSHARE_NET:
    if "unshareFails" not in SIMULATE and libc.unshare(CLONE_NEWNET) == 0:
        notes.append("network: unshared by the worker")
    else:
        REFUSE = "the network namespace could not be created (errno %d): tests refused" % (
            ctypes.get_errno() if "unshareFails" not in SIMULATE else errno.EPERM)
        notes.append(REFUSE)
# Orphans of a test (a daemonised grandchild) are re-parented to us, so we can reap them.
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def uid_procs(uid, live_only=False):
    """Pids of processes owned by uid (zombies excluded with live_only), this process excluded."""
    me = os.getpid()
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat("/proc/" + name).st_uid != uid:
                continue
            if live_only:
                with open("/proc/%s/stat" % name, "rb") as f:
                    st = f.read()
                if st[st.rindex(b")") + 2:st.rindex(b")") + 3] in (b"Z", b"X"):
                    continue
        except (OSError, ValueError):
            continue
        out.append(int(name))
    return out


def sysv_objects():
    """(kind, id, owner uid, creator uid) of every SysV object visible in /proc/sysvipc."""
    out = []
    # Columns: the id is the 2nd; owner and creator uid per kind.
    for kind, uid_col, cuid_col in (("shm", 7, 9), ("sem", 4, 6), ("msg", 7, 9)):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            p = line.split()
            try:
                out.append((kind, int(p[1]), int(p[uid_col]), int(p[cuid_col])))
            except (IndexError, ValueError):
                continue
    return out


def remove_sysv(uid=None):
    """Removes the SysV objects of `uid` (None: all that this process may remove)."""
    removed = 0
    for kind, oid, owner, creator in sysv_objects():
        if uid is not None and uid not in (owner, creator):
            continue
        if kind == "shm":
            r = libc.shmctl(oid, 0, None)  # IPC_RMID
        elif kind == "sem":
            r = libc.semctl(oid, 0, 0)
        else:
            r = libc.msgctl(oid, 0, None)
        removed += r == 0
    return removed


def start_reaper():
    """A small helper forked before the heavy imports: for each uid it is sent, it forks a process
    that becomes that uid and kills every process of that uid (kill(-1) as an unprivileged user
    reaches only that user's processes). Forking it now keeps each kill cheap (a tiny process)."""
    r_req, w_req = os.pipe()
    r_rep, w_rep = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w_req)
        os.close(r_rep)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        reqf = os.fdopen(r_req, "rb")
        while True:
            line = reqf.readline()
            if not line:
                os._exit(0)
            ipc = line.startswith(b"ipc ")
            uid = int(line[4:] if ipc else line)
            killed = 0
            c = os.fork()
            if c == 0:
                try:
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
                    # Never kill(-1) with privileges: that would reach every process we can see.
                    if os.getuid() != uid or os.geteuid() != uid or uid == 0:
                        os._exit(3)
                    if ipc:
                        # Removing a SysV object takes its owner (or CAP_SYS_ADMIN, which the
                        # worker does not keep): so the removal runs as the test's uid.
                        os._exit(0 if remove_sysv(uid) >= 0 else 5)
                    for _ in range(2000):
                        os.kill(-1, signal.SIGKILL)
                        # kill(-1) reports success whenever any other process exists, so look.
                        if not uid_procs(uid, live_only=True):
                            os._exit(0)
                        time.sleep(0.001)
                    os._exit(2)
                except BaseException:
                    os._exit(4)
            _, st = os.waitpid(c, 0)
            killed = os.waitstatus_to_exitcode(st)
            os.write(w_rep, b"%d\n" % killed)
    os.close(r_req)
    os.close(w_rep)
    return pid, w_req, r_rep


def uid_can_run_python(uid):
    """Whether an unprivileged uid can read this interpreter's files (lazy imports need that).
    Under bubblewrap the bound folders are made reachable; on a bare host a venv under /root
    (mode 0700) is not, and then the per-test uid is dropped (a weaker fallback, reported)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with open(os.__file__, "rb"):
                pass
            for p in sys.path:
                if p and os.path.isdir(p):
                    os.listdir(p)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st) == 0


if RUN_UID is not None and ("uidDropFails" in SIMULATE or not uid_can_run_python(RUN_UID)):
    REFUSE = REFUSE or ("the per-test uid %d cannot be used (it cannot run this interpreter): "
                        "tests refused rather than run as root" % RUN_UID)
    notes.append(REFUSE)

REAPER = start_reaper() if RUN_UID is not None else None


def reap_zombies():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if REAPER is not None and pid == REAPER[0]:
            return


def kill_until_gone(pids_of, tries):
    """SIGKILLs what pids_of() lists until it lists nothing (True) or `tries` rounds pass (False);
    children forked meanwhile are caught by the next round, zombies reaped each round."""
    for _ in range(tries):
        pids = pids_of()
        if not pids:
            return True
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        reap_zombies()
        time.sleep(0.001)
    return False


# --- bounded scratch space and per-test cgroups (issue 11) ------------------------------------------

class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capability(cap):
    """Removes one capability from every set of this process (and its bounding set)."""
    libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    hdr = CapHeader(0x20080522, 0)
    data = (CapData * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    d = data[cap // 32]
    bit = ~(1 << (cap % 32)) & 0xFFFFFFFF
    d.effective &= bit
    d.permitted &= bit
    d.inheritable &= bit
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


CAP_SYS_ADMIN = 21
MS_NOSUID, MS_NODEV = 2, 4
# Under bubblewrap as root the Node side asks for the scratch folders to be re-mounted with a size
# AND an inode count (bubblewrap's --size has no nr_inodes): one test at a time per worker, so
# these bound the bytes and the files one test can leave. CAP_SYS_ADMIN, kept by bubblewrap only
# for this, is dropped from every set right after, before anything else runs.
MOUNTS = ARGS.get("mounts") or []
FILES_BOUNDED = False
if MOUNTS:
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_char_p]
    failed = []
    for m in MOUNTS:
        opts = "size=%d,nr_inodes=%d,mode=%s" % (int(m["size"]), int(m["inodes"]), m["mode"])
        if libc.mount(b"tmpfs", m["path"].encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                      opts.encode()) != 0:
            failed.append("%s (errno %d)" % (m["path"], ctypes.get_errno()))
    try:
        drop_capability(CAP_SYS_ADMIN)
    except OSError as e:
        REFUSE = REFUSE or "CAP_SYS_ADMIN could not be dropped after mounting (%s): tests refused" % e
        notes.append(REFUSE)
    if failed:
        notes.append("file count not bounded: tmpfs mount refused for %s; sizes stay capped by "
                     "bubblewrap" % ", ".join(failed))
    else:
        FILES_BOUNDED = True
    os.chdir(WORK_ROOT)

# Per-test groups, inside the worker's own group that the Node side made (and, under bubblewrap,
# bound at these paths). v1: one folder per controller; v2: one folder for both.
CGROUP = ARGS.get("cgroup")
JUDGE_PIDS = 16  # room in pids.max for the judge process and its library threads


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _counter(path, key):
    for line in _read(path).splitlines():
        p = line.split()
        if len(p) == 2 and p[0] == key:
            try:
                return int(p[1])
            except ValueError:
                return 0
    return 0


class TestGroup:
    """One test's cgroup: made before the test's processes exist, joined by each of them before
    it drops privileges (so the test cannot leave it: the files are root's), emptied and removed
    after the test."""

    def __init__(self, name, limits):
        self.v = CGROUP["version"]
        self.mem = os.path.join(CGROUP["memory"], name)
        self.pids = self.mem if self.v == "v2" else os.path.join(CGROUP["pids"], name)
        self.dirs = [self.mem] if self.mem == self.pids else [self.mem, self.pids]
        self.mem_max = int(limits.get("memoryBytes", 4 << 30))
        self.pids_max = int(limits.get("processes", 128)) + JUDGE_PIDS
        for d in self.dirs:
            try:
                os.mkdir(d)
            except FileExistsError:  # left by a killed test of an earlier worker: reuse empty
                self.kill()
        if self.v == "v1":
            if self.mem_max > 0:
                _write(os.path.join(self.mem, "memory.limit_in_bytes"), str(self.mem_max))
                try:  # swap too (memsw >= limit); absent without swap accounting
                    _write(os.path.join(self.mem, "memory.memsw.limit_in_bytes"), str(self.mem_max))
                except OSError:
                    pass
        else:
            if self.mem_max > 0:
                _write(os.path.join(self.mem, "memory.max"), str(self.mem_max))
                for f, v in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    try:
                        _write(os.path.join(self.mem, f), v)
                    except OSError:
                        pass
        _write(os.path.join(self.pids, "pids.max"), str(self.pids_max))

    def join(self):
        """Moves the calling process into the group (every controller)."""
        for d in self.dirs:
            _write(os.path.join(d, "cgroup.procs"), "0")

    def oom_kills(self):
        if self.v == "v1":
            return _counter(os.path.join(self.mem, "memory.oom_control"), "oom_kill")
        return _counter(os.path.join(self.mem, "memory.events"), "oom_kill")

    def pids_refused(self):
        return _counter(os.path.join(self.pids, "pids.events"), "max")

    def facts(self):
        """What the kernel holds for this group (read back, not what we meant to write)."""
        if self.v == "v1":
            mem = _read(os.path.join(self.mem, "memory.limit_in_bytes")).strip()
            peak = _read(os.path.join(self.mem, "memory.max_usage_in_bytes")).strip()
        else:
            mem = _read(os.path.join(self.mem, "memory.max")).strip()
            peak = _read(os.path.join(self.mem, "memory.peak")).strip()
        out = {"cgroup": self.v, "pidsMax": _read(os.path.join(self.pids, "pids.max")).strip()}
        if mem.isdigit():
            out["memoryMaxBytes"] = int(mem)
        if peak.isdigit():
            out["peakMemoryBytes"] = int(peak)
        return out

    def procs(self):
        out = set()
        for d in self.dirs:
            for x in _read(os.path.join(d, "cgroup.procs")).split():
                if x.isdigit():
                    out.add(int(x))
        return out

    def kill(self):
        """Kills every process in the group: cgroup.kill (v2, Linux 5.14+), else a kill loop
        (nothing in the group can fork faster than it is killed: pids.max bounds it)."""
        if self.v == "v2" and os.path.exists(os.path.join(self.mem, "cgroup.kill")):
            try:
                _write(os.path.join(self.mem, "cgroup.kill"), "1")
            except OSError:
                pass
        return kill_until_gone(self.procs, 2000)

    def remove(self):
        for d in self.dirs:
            for _ in range(2000):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        break
                    reap_zombies()
                    time.sleep(0.001)


if CGROUP:
    # The worker proves it can make, limit and remove a group before promising per-test limits.
    try:
        g = TestGroup("probe", {"memoryBytes": 1 << 30, "processes": 8})
        g.remove()
        notes.append("cgroups: %s, per test: memory and processes of all its processes together"
                     % CGROUP["version"])
    except OSError as e:
        notes.append("cgroups offered but unusable (%s): limits are per process only "
                     "(RLIMIT_AS, RLIMIT_NPROC)" % e)
        CGROUP = None


# SysV IPC: under bubblewrap the worker has its own IPC namespace, so every object in it was made
# by its tests (or its judge); without one only the per-test uid's objects can be told apart.
PRIVATE_IPC = bool(ARGS.get("privateIpc"))


def clean_sysv():
    """Removes the SysV shared memory, semaphores and message queues a test left: its uid's
    (through the reaper, which can become that uid) and, in a private namespace, the rest too."""
    objs = sysv_objects()
    if not objs:
        return
    if RUN_UID is not None and any(RUN_UID in (o[2], o[3]) for o in objs):
        os.write(REAPER[1], b"ipc %d\n" % RUN_UID)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = os.read(REAPER[2], 64)
            if not chunk:
                break
            buf += chunk
    if PRIVATE_IPC:
        remove_sysv()


if not PRIVATE_IPC and RUN_UID is None:
    notes.append("SysV IPC: host namespace and no per-test uid, so objects a test makes cannot be "
                 "told apart and are not removed (seccomp refuses making them)")


def reap_uid(uid):
    _, w, r = REAPER
    os.write(w, b"%d\n" % uid)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(r, 64)
        if not chunk:
            return -1
        buf += chunk
    return int(buf)


# --- the heavy imports, once ------------------------------------------------------------------------

for k, v in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "MPLBACKEND": "Agg",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(k, v)

PRELOAD_MODULES = [
    "numpy", "pandas", "scipy", "scipy.stats", "scipy.optimize", "scipy.sparse", "scipy.spatial",
    "scipy.interpolate", "scipy.integrate", "scipy.signal", "scipy.cluster", "scipy.linalg",
    "scipy.ndimage", "scipy.special", "matplotlib", "matplotlib.pyplot", "seaborn",
    "sklearn", "sklearn.linear_model", "sklearn.preprocessing", "sklearn.model_selection",
    "sklearn.feature_extraction.text", "sklearn.cluster", "sklearn.svm", "sklearn.ensemble",
    "sklearn.metrics", "sklearn.pipeline", "sklearn.decomposition", "sklearn.tree",
    "sklearn.datasets", "sklearn.impute", "sklearn.compose", "sklearn.neighbors",
    "torch", "torch.nn", "torch.nn.functional", "tensorflow", "copy", "io", "re", "tokenize",
    "ast", "pickle", "PIL", "PIL.Image",
    # What DS-1000's contexts and references import beyond the above (a child would otherwise pay
    # for it on every test: Keras alone takes seconds).
    "sklearn.feature_selection", "sklearn.metrics.pairwise", "sklearn.feature_extraction",
    "sklearn.calibration", "sklearn.naive_bayes", "scipy.spatial.distance",
    "scipy.cluster.hierarchy", "scipy.fft", "matplotlib.ticker", "matplotlib.pylab",
    "mpl_toolkits.mplot3d", "xgboost", "xgboost.sklearn", "gensim", "gensim.models",
    "gensim.test.utils", "statsmodels.api", "yaml", "torch.autograd", "torch.optim",
    "keras", "keras.layers", "keras.models", "keras.activations",
]
import_errors = {}
t0 = time.time()
if PRELOAD:
    import importlib

    try:
        import matplotlib

        matplotlib.use("Agg")
    except Exception:
        pass
    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except BaseException as e:  # a missing package is reported, not fatal
            import_errors[name] = "%s: %s" % (type(e).__name__, str(e)[:200])
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        _ = tf.keras.layers.Dense  # resolve TensorFlow's lazy Keras loader now
    except Exception:
        pass
import_seconds = time.time() - t0
# Move everything imported so far out of the collector's reach: a forked child that ran a full
# collection would otherwise write to (and so copy) every page of the inherited heap.
import gc

gc.collect()
gc.freeze()


def vm_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- one test in a forked child ----------------------------------------------------------------------

# Offline copies of the seaborn datasets DS-1000 loads (written by `rl4qe setup-exec`).
SEABORN_DATA = os.path.join(sys.prefix, "share", "seaborn-data")


def set_test_env(home):
    """The whole environment of a process that runs test code: nothing inherited from the worker
    (no secrets, no proxies), one thread per library, a private home and temp folder."""
    os.environ.clear()
    os.environ.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": home,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONHASHSEED": "0",
            "SEABORN_DATA": SEABORN_DATA,
        }
    )
MEMORY_MARKERS = ("can't allocate memory", "out of memory", "cannot allocate memory", "bad_alloc",
                  "oom when allocating", "failed to allocate", "unable to allocate")


# --- results as data (issue 11) ---------------------------------------------------------------------
#
# In DS-1000 mode the solution runs in one process ("solver", the per-test uid) and the test's
# comparison in another ("judge", forked from this worker, which never ran untrusted code). The
# solver hands back only test_env["result"] (and, for plots, the pyplot figures) as a pickle that
# the judge reads with SafeUnpickler: only the classes and functions listed here can be named, so
# the stream can build plain data, numpy arrays, pandas and scipy.sparse objects, tensors (through
# the converters below) and matplotlib figures, and nothing that runs code of the solution's.
import io as _io
import pickle as _pickle
import types as _types

SAFE = _types.ModuleType("rl4qe_safe")
sys.modules["rl4qe_safe"] = SAFE


def _safe_fn(f):
    f.__module__ = "rl4qe_safe"
    setattr(SAFE, f.__name__, f)
    return f


def _plain_array(arr):
    import numpy as np

    if type(arr) is not np.ndarray or arr.dtype.hasobject:
        raise _pickle.UnpicklingError("tensor data must be a plain numeric numpy array")
    return arr


@_safe_fn
def torch_tensor(arr, dtype, requires_grad, parameter):
    import torch

    t = torch.from_numpy(_plain_array(arr).copy())
    want = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(want, torch.dtype):
        raise _pickle.UnpicklingError("not a torch dtype: %r" % (dtype,))
    t = t.to(want)
    if parameter:
        return torch.nn.Parameter(t, requires_grad=bool(requires_grad))
    if requires_grad:
        t.requires_grad_(True)
    return t


@_safe_fn
def tf_tensor(arr, dtype, variable, trainable):
    import numpy as np
    import tensorflow as tf

    if type(arr) is not np.ndarray:
        raise _pickle.UnpicklingError("tensor data must be a numpy array")
    if arr.dtype.hasobject and not all(type(x) is bytes for x in arr.ravel()):
        raise _pickle.UnpicklingError("string tensors hold bytes only")
    dt = tf.dtypes.as_dtype(str(dtype))
    if variable:
        return tf.Variable(arr, dtype=dt, trainable=bool(trainable))
    return tf.constant(arr, dtype=dt)


@_safe_fn
def safe_getattr(obj, name):
    # matplotlib pickles some bound methods as getattr(instance-or-class, name): allowed only for
    # public names on matplotlib objects, and only when the answer is matplotlib's own function.
    if not isinstance(name, str) or name.startswith("__"):
        raise _pickle.UnpicklingError("getattr of %r refused" % (name,))
    if type(obj) is list and name in ("remove", "append"):
        return getattr(obj, name)  # artists' _remove_method: a list's own bound method
    mod = getattr(type(obj) if not isinstance(obj, type) else obj, "__module__", "") or ""
    if not mod.startswith(("matplotlib.", "mpl_toolkits.")):
        raise _pickle.UnpicklingError("getattr on %s refused (%r, %r)" % (mod, type(obj), name))
    v = getattr(obj, name)
    fmod = getattr(v, "__module__", "") or ""
    if not callable(v) or not fmod.startswith(("matplotlib.", "mpl_toolkits.")):
        raise _pickle.UnpicklingError("getattr result refused")
    return v


SAFE_NAMES = {
    "builtins": {"dict", "list", "tuple", "set", "frozenset", "slice", "complex", "object", "bool",
                 "int", "float", "str", "bytes"},
    "collections": {"OrderedDict", "defaultdict"},
    "copyreg": {"_reconstructor"},
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "pandas._libs.arrays": {"__pyx_unpickle_NDArrayBacked"},
    "pandas._libs.internals": {"_unpickle_block"},
    "pandas._libs.missing": {"NA", "NAType"},
    "pandas._libs.tslibs.timestamps": {"_unpickle_timestamp"},
    "pandas._libs.tslibs.timedeltas": {"_timedelta_unpickle"},
    "pandas._libs.tslibs.nattype": {"__nat_unpickle"},
    "pandas.core.indexes.base": {"_new_Index"},
    "pandas.core.indexes.datetimes": {"_new_DatetimeIndex"},
    "pandas.core.indexes.interval": {"_new_IntervalIndex"},
    "pandas.core.indexes.period": {"_new_PeriodIndex"},
    "pytz": {"_p", "_UTC"},
    "torch": {"Size"},
    "torch.optim.sgd": {"SGD"},
    "torch.optim.adam": {"Adam"},
    "torch.optim.adamw": {"AdamW"},
    "torch.optim.rmsprop": {"RMSprop"},
    "torch.optim.adagrad": {"Adagrad"},
    "rl4qe_safe": {"torch_tensor", "tf_tensor"},
}
# Only for the pyplot figures of plotting problems (never for `result`): a masked array, for
# instance, compares equal to anything in numpy.testing, so it must not be a result.
FIGURE_NAMES = {
    "builtins": {"getattr"},
    "functools": {"partial"},
    "itertools": {"count"},
    "numpy.ma.core": {"_mareconstruct", "MaskedArray"},
    "matplotlib.cbook": {"_exception_printer"},
    "matplotlib.backend_bases": {"_key_handler", "_mouse_handler"},
    "matplotlib.artist": {"_stale_axes_callback"},
    "pandas.plotting._matplotlib.timeseries": {"_format_coord"},
    "pandas.plotting._matplotlib.converter": {"_daily_finder"},
}
# Classes (only classes) of these packages may be named; code-running corners are excluded.
CLASS_PREFIXES = ("pandas.", "scipy.sparse.", "scipy.stats.")
FIGURE_CLASS_PREFIXES = ("matplotlib.", "mpl_toolkits.", "seaborn.", "pandas.plotting.")
DENY_PREFIXES = ("pandas.io", "pandas.core.computation", "pandas._testing", "pandas.testing",
                 "pandas.tests", "pandas.util", "matplotlib.testing", "matplotlib.animation",
                 "matplotlib.backends", "matplotlib.sphinxext", "matplotlib.pyplot",
                 "scipy.sparse.linalg")


class SafeUnpickler(_pickle.Unpickler):
    def __init__(self, data, figures=False):
        super().__init__(_io.BytesIO(data))
        self.figures = figures

    def find_class(self, module, name):
        if module.startswith(DENY_PREFIXES):
            raise _pickle.UnpicklingError("refused: %s.%s" % (module, name))
        if "." in name:
            # Nested classes (BoxStyle.Round) and methods (Axis._format_with_dict) of matplotlib,
            # in figures only, resolved attribute by attribute without dunders.
            if not (self.figures and module.startswith(("matplotlib.", "mpl_toolkits."))
                    and module in sys.modules and "__" not in name):
                raise _pickle.UnpicklingError("refused: %s.%s" % (module, name))
            obj = sys.modules[module]
            for part in name.split("."):
                obj = getattr(obj, part, None)
            fmod = getattr(obj, "__module__", "") or ""
            if (isinstance(obj, type) or isinstance(obj, _types.FunctionType)) and \
                    fmod.startswith(("matplotlib.", "mpl_toolkits.")):
                return obj
            raise _pickle.UnpicklingError("refused: %s.%s" % (module, name))
        if name in SAFE_NAMES.get(module, ()):
            if module == "rl4qe_safe":
                return getattr(SAFE, name)
            return super().find_class(module, name)
        if self.figures and name in FIGURE_NAMES.get(module, ()):
            if module == "builtins" and name == "getattr":
                return safe_getattr
            return super().find_class(module, name)
        prefixes = CLASS_PREFIXES + (FIGURE_CLASS_PREFIXES if self.figures else ())
        if module.startswith(prefixes) and module in sys.modules:
            obj = getattr(sys.modules[module], name, None)
            if isinstance(obj, type) and not issubclass(obj, BaseException):
                if module.startswith("scipy.stats.") and not issubclass(obj, tuple):
                    raise _pickle.UnpicklingError("refused: %s.%s" % (module, name))
                return obj
        raise _pickle.UnpicklingError("refused: %s.%s" % (module, name))


def safe_loads(data, figures=False):
    return SafeUnpickler(data, figures).load()


class _SolverPickler(_pickle.Pickler):
    """Tensors travel as numpy arrays plus a dtype name (torch's own pickling goes through
    torch.load, which runs arbitrary pickles; TensorFlow's through convert_to_tensor)."""

    def reducer_override(self, obj):
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            dt = str(t.dtype)
            if t.dtype == torch.bfloat16:
                t = t.float()
            return (torch_tensor, (t.resolve_conj().numpy().copy(), dt, bool(obj.requires_grad),
                                   isinstance(obj, torch.nn.Parameter)))
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            try:
                import numpy as np

                if isinstance(obj, tf.Variable):
                    return (tf_tensor, (np.asarray(obj.numpy()), obj.dtype.name, True,
                                        bool(obj.trainable)))
                if isinstance(obj, tf.Tensor) and hasattr(obj, "numpy"):
                    return (tf_tensor, (np.asarray(obj.numpy()), obj.dtype.name, False, False))
            except (AttributeError, TypeError):
                pass
        return NotImplemented


class _SolverUnpickler(_pickle.Unpickler):
    """The judge's test inputs, as they were. An unpickled object dtype is a new dtype instance,
    and pandas 1.5 then mistakes a view for a copy (Series.astype(str) rewrites the frame it came
    from); the canonical instance keeps the inputs behaving as in DS-1000's one-process harness."""

    def find_class(self, module, name):
        if module == "numpy" and name == "dtype":
            import numpy as np

            def dtype(spec, align=False, copy=False):
                return np.dtype(object) if spec == "O8" else np.dtype(spec, align, copy)

            return dtype
        return super().find_class(module, name)


def solver_dumps(obj):
    buf = _io.BytesIO()
    _SolverPickler(buf, protocol=4).dump(obj)
    return buf.getvalue()


# --- seccomp (issue 11) -----------------------------------------------------------------------------
#
# A classic-BPF filter, assembled here (no libseccomp needed), installed in every process that runs
# untrusted code after the uid drop: what a data-science solution never needs fails with EPERM —
# ptrace and cross-process memory, mount and friends, namespace creation (unshare, setns, clone
# with CLONE_NEW*), kernel keyrings, bpf, perf events, userfaultfd, modules, SysV IPC (whose
# objects would outlive the test in the worker's IPC namespace). clone3 gets ENOSYS, so libc falls
# back to clone, whose flags the filter can see. Non-x86_64 system-call entries (int 0x80, x32)
# are refused as a whole. no_new_privs comes first: it is required and stops setuid binaries.
SECCOMP_DENY_X86_64 = [
    101, 310, 311,  # ptrace, process_vm_readv/writev
    165, 166, 155, 161, 428, 429, 430, 431, 432, 442,  # mount, umount2, pivot_root, chroot, new mount API
    272, 308,  # unshare, setns
    248, 249, 250,  # add_key, request_key, keyctl
    321, 298, 323,  # bpf, perf_event_open, userfaultfd
    175, 176, 313, 246, 320,  # modules, kexec
    167, 168, 169, 163, 179, 172, 173, 303, 304,  # swap, reboot, acct, quotactl, iopl, ioperm, handles
    29, 30, 31, 67, 64, 65, 66, 220, 68, 69, 70, 71,  # SysV shm, sem, msg
]
CLONE_NS_FLAGS = 0x7E020000
AUDIT_ARCH_X86_64 = 0xC000003E


def seccomp_program():
    import platform

    if platform.machine() != "x86_64":
        return None
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050001, 0x00050026
    p = [(ld, 0, 0, 4), (jeq, 1, 0, AUDIT_ARCH_X86_64), (ret, 0, 0, eperm), (ld, 0, 0, 0),
         (jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    for nr in SECCOMP_DENY_X86_64:
        p += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    p += [(jeq, 0, 1, 435), (ret, 0, 0, enosys)]
    # clone(flags, ...): refuse namespace flags (low 32 bits of the first argument).
    p += [(jeq, 0, 3, 56), (ld, 0, 0, 16), (jset, 0, 1, CLONE_NS_FLAGS), (ret, 0, 0, eperm)]
    p += [(ret, 0, 0, allow)]
    return p


def install_seccomp():
    """Returns None when installed, else why not."""
    prog = seccomp_program()
    if prog is None:
        return "seccomp: no filter for this architecture"

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    arr = (SockFilter * len(prog))(*[SockFilter(*x) for x in prog])
    fprog = SockFprog(len(prog), arr)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return "seccomp: no_new_privs refused (errno %d)" % ctypes.get_errno()
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return "seccomp: filter refused (errno %d)" % ctypes.get_errno()
    return None


def probe_seccomp():
    """Whether the filter installs here (in a throwaway child), and that it refuses unshare."""
    pid = os.fork()
    if pid == 0:
        if install_seccomp() is not None:
            os._exit(2)
        if libc.unshare(0x04000000) == 0 or ctypes.get_errno() != errno.EPERM:
            os._exit(3)
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(st)
    return None if code == 0 else "seccomp: not available here (probe exit %d); tests run without" % code


SECCOMP_NOTE = ("seccomp: disabled (simulated)" if "noSeccomp" in SIMULATE else probe_seccomp())
SECCOMP = SECCOMP_NOTE is None
if not SECCOMP:
    notes.append(SECCOMP_NOTE)


# --- DS-1000: solver and judge (issue 11) --------------------------------------------------------------

FRAME_CAP = 256 << 20  # largest result the solver may hand back


# The protocol helpers bind what they use when defined: a solution that patches builtins or os in
# the solver breaks only its own reply (the judge refuses it), not the framing of a correct one.
def write_all(fd, data, _write=os.write, _mv=memoryview):
    mv = _mv(data)
    while mv:
        n = _write(fd, mv)
        mv = mv[n:]


def read_exact(fd, n, _read=os.read, _len=len, _min=min):
    parts, got = [], 0
    while got < n:
        chunk = _read(fd, _min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += _len(chunk)
    return b"".join(parts)


def write_frame(fd, data, _len=len):
    write_all(fd, _len(data).to_bytes(8, "little") + data)


def read_frame(fd, cap=FRAME_CAP):
    hdr = read_exact(fd, 8)
    if hdr is None:
        return None
    n = int.from_bytes(hdr, "little")
    if n > cap:
        raise ValueError("frame of %d bytes over the cap" % n)
    return read_exact(fd, n)


def clear_capabilities():
    """After the uid drop the permitted and effective sets are empty; the inheritable and ambient
    ones (bwrap sets them for the worker) are emptied too, so nothing is left in any set."""
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    hdr = Header(0x20080522, 0)
    data = (Data * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for d in data:
        d.inheritable = 0
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def nproc_limit(limits):
    """RLIMIT_NPROC of the test's uid: the limit itself without a cgroup; with one, pids.max is
    the limit (it counts the judge and every live process however it was made) and this a
    backstop at twice that: the uid's count also holds exited children not yet reaped, which
    pids.max no longer counts, so a tighter backstop would trip first in a fork bomb."""
    n = int(limits.get("processes", 128))
    return 2 * (n + JUDGE_PIDS) if TEST_GROUP is not None else n


def child_setup(req, run_dir, io_fd, keep, drop_uid, home):
    """Common start of a forked child: own session, stdout/stderr to the capped log, stdin from
    /dev/null, only the `keep` descriptors open (moved to unpredictable numbers), scrubbed
    environment, optionally the per-test uid, rlimits. Returns the new numbers of `keep`."""
    limits = req.get("limits") or {}
    os.setsid()
    if TEST_GROUP is not None:
        TEST_GROUP.join()  # before anything else, while the group's files are still ours to write
    os.dup2(io_fd, 1)
    os.dup2(io_fd, 2)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    base = 300 + int.from_bytes(os.urandom(2), "little") % 600
    moved = []
    for i, fd in enumerate(keep):
        os.dup2(fd, base + i)
        moved.append(base + i)
    os.closerange(3, base)
    os.closerange(base + len(keep), 65536)
    os.chdir(run_dir)
    set_test_env(home)
    import tempfile

    tempfile.tempdir = None
    if drop_uid and "uidDropFailsInChild" in SIMULATE:
        raise OSError(errno.EPERM, "setuid refused (simulated)")
    if drop_uid and RUN_UID is not None:
        os.setgroups([])
        os.setgid(RUN_UID)
        os.setuid(RUN_UID)
        # Fail closed: never run a test with more privilege than asked for.
        if os.getuid() != RUN_UID or os.geteuid() != RUN_UID or os.getegid() != RUN_UID:
            raise OSError("uid drop did not take effect")
        try:
            os.setuid(0)
        except OSError:
            pass
        else:
            raise OSError("uid drop is reversible")
        clear_capabilities()
    mem = int(limits.get("memoryBytes", 4 << 30))
    cpu = int(max(1, round(float(limits.get("cpuSeconds", 10)))))
    if mem > 0:
        b = vm_kib("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (b + mem, b + mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits.get("outputBytes", 16 << 20)),) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits.get("openFiles", 256)),) * 2)
    if drop_uid and RUN_UID is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc_limit(limits),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if drop_uid and SECCOMP:
        err = install_seccomp()
        if err is not None:
            raise OSError(err)  # it worked at start-up: refuse rather than run without it
    return moved


def solver_main(req, run_dir, io_fd, job_r, rep_w):
    """The solution's process (per-test uid). Forked from the worker before the judge computed
    anything, so no expected result, oracle or verdict channel exists in its memory. Serves the
    judge's exec() calls: runs the code, hands back `result` (and pyplot figures) as data."""
    try:
        job_r, rep_w = child_setup(req, run_dir, io_fd, [job_r, rep_w], True, run_dir)
    except BaseException:
        os._exit(70)
    # Plotting problems inspect pyplot's state: their figures travel too (also when an older
    # Node side does not say so).
    figures = bool(req.get("figures", "matplotlib" in str(req.get("context", ""))))
    while True:
        try:
            data = read_frame(job_r)
        except BaseException:
            os._exit(72)
        if data is None:
            os._exit(0)
        header, payload, figs = {"ok": True}, b"", b""
        try:
            job = _SolverUnpickler(_io.BytesIO(data)).load()  # written by the judge: trusted
            env = job["env"]
            exec(compile(job["code"], "<solution>", "exec"), env)
            try:
                payload = solver_dumps({"has": "result" in env, "result": env.get("result")})
            except BaseException as e:
                header = {"ok": False, "type": "ResultNotData",
                          "tb": "the solution's result cannot be handed over as data: %s: %s"
                                % (type(e).__name__, str(e)[:300])}
            if figures and header["ok"] and "matplotlib.pyplot" in sys.modules:
                try:
                    plt = sys.modules["matplotlib.pyplot"]
                    figs = solver_dumps([plt.figure(n) for n in plt.get_fignums()])
                except BaseException:
                    figs = b""
        except BaseException as e:
            try:
                first = e.__traceback__.tb_next if e.__traceback__ is not None else None
                tb = "".join(traceback.format_exception(type(e), e, first))
            except BaseException:
                tb = "%s" % type(e).__name__
            if isinstance(e, SystemExit):
                tb += "\nthe solution called sys.exit()/exit()/quit(): a failure, not a pass"
            header = {"ok": False, "type": type(e).__name__, "tb": tb[-TAIL_BYTES:],
                      "syntax": isinstance(e, SyntaxError)}
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        try:
            write_frame(rep_w, json.dumps(header).encode())
            write_frame(rep_w, payload)
            write_frame(rep_w, figs)
        except BaseException:
            os._exit(73)


class SolverError(Exception):
    def __init__(self, header):
        super().__init__(str(header.get("type")))
        self.header = header


class SolverDied(Exception):
    pass


def copy_new_files(src, dst, cap=64 << 20, only=None):
    """Files the solution wrote (e.g. output.png) join the judge's folder; never overwrite one of
    the judge's own (ans.png), never follow a link. With `only`, just the names it admits."""
    try:
        names = os.listdir(src)
    except OSError:
        return
    for name in names[:256]:
        if only is not None and not only(name):
            continue
        p = os.path.join(src, name)
        q = os.path.join(dst, name)
        try:
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode) or st.st_size > cap or os.path.lexists(q):
                continue
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                data = read_exact(fd, st.st_size) or b""
            finally:
                os.close(fd)
            with open(q, "xb") as f:
                f.write(data)
        except OSError:
            continue


def judge_main(req, judge_dir, run_dir, io_fd, job_w, rep_r, result_w, nonce):
    """The judge: runs DS-1000's code_context (trusted), its expected results and comparisons.
    It never executes the solution; exec() of the solution is forwarded to the solver."""
    result_fd = result_w
    try:
        job_w, rep_r, result_fd = child_setup(req, judge_dir, io_fd, [job_w, rep_r, result_w],
                                              False, judge_dir)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except BaseException as e:
        try:
            os.write(result_fd, (json.dumps({"setup": "%s: %s" % (type(e).__name__, e),
                                             "nonce": nonce}) + "\n").encode())
        finally:
            os._exit(70)

    def report(obj):
        obj["nonce"] = nonce
        try:
            os.write(result_fd, (json.dumps(obj)[:16000] + "\n").encode())
        except OSError:
            pass

    import builtins

    def solver_exec(code, env=None, *rest):
        # Every exec() of the context goes to the solver: the code carries the solution, and the
        # judge must never run it, whatever form the call takes.
        if not isinstance(code, str):
            raise TypeError("the judge forwards only source strings to the solver")
        if env is None:
            env = {}
        if not isinstance(env, dict):
            raise TypeError("exec() globals must be a dict")
        sendable = {k: v for k, v in env.items() if k != "__builtins__"}
        try:
            blob = _pickle.dumps({"code": code, "env": sendable}, protocol=4)
        except Exception:
            import cloudpickle  # local classes in a test input

            blob = cloudpickle.dumps({"code": code, "env": sendable}, protocol=4)
        # Inputs the test wrote for the code (e.g. a saved model the context loads) go to the
        # solver, but only names the context's own code uses and the solution does not mention:
        # an oracle file (ans.png) must not reach it.
        copy_new_files(judge_dir, run_dir,
                       only=lambda n: n in code and n not in req.get("solution", ""))
        try:
            write_frame(job_w, blob)
            header = read_frame(rep_r, 1 << 20)
            payload = read_frame(rep_r)
            figs = read_frame(rep_r)
        except (OSError, ValueError):
            raise SolverDied()  # ended, or wrote something that is not the protocol
        if header is None or payload is None or figs is None:
            raise SolverDied()
        try:
            h = json.loads(header)
        except ValueError:
            raise SolverDied()
        if not isinstance(h, dict):
            raise SolverDied()
        if h.get("ok") is not True:
            raise SolverError(h)
        try:
            data = safe_loads(payload)
            if not isinstance(data, dict):
                raise _pickle.UnpicklingError("not a result record")
        except Exception as e:
            raise SolverError({"ok": False, "type": "ResultNotData",
                               "tb": "the solution's result was refused: %s: %s"
                                     % (type(e).__name__, str(e)[:300])})
        if data.get("has") is True:
            env["result"] = data.get("result")
        if figs:
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close("all")
                try:
                    safe_loads(figs, figures=True)
                except Exception:
                    plt.close("all")
        copy_new_files(run_dir, judge_dir)
        return None

    try:
        g = {"__name__": "__main__", "__builtins__": builtins, "exec": solver_exec}
        context = req["context"]
        solution = req["solution"]
        exec(compile(context, "<code_context>", "exec"), g)
        g["test_execution"](solution)
        if "test_string(" in context and "test_string" in g:
            g["test_string"](solution)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        report({"ok": True})
        os._exit(0)
    except SolverError as e:
        h = e.header
        report({"ok": False, "type": str(h.get("type") or "Exception")[:200],
                "tb": str(h.get("tb") or "")[-TAIL_BYTES:], "syntax": h.get("syntax") is True})
        os._exit(1)
    except SolverDied:
        report({"ok": False, "died": True})
        os._exit(1)
    except BaseException as e:
        try:
            first = e.__traceback__.tb_next if e.__traceback__ is not None else None
            tb = "".join(traceback.format_exception(type(e), e, first))
        except BaseException:
            tb = repr(e)
        report({"ok": False, "type": type(e).__name__, "tb": tb[-TAIL_BYTES:],
                "syntax": isinstance(e, SyntaxError)})
        os._exit(1)




# --- script mode: tamper detection (issue 11) --------------------------------------------------------
#
# In script mode the program and the harness share one interpreter, so a frame (whose f_back chain
# leads to child_main's locals: report() and the nonce), the heap (gc), raw memory (ctypes,
# /proc/self/mem) or a tracer are ways to forge a pass. The audit hook cannot take them away, but
# it sees each one before the program gets the object, and announces it (with the nonce) on the
# result pipe; a run that announced any and would have passed is `tampered`.
#
# Frames are asked for by libraries too (namedtuple, enum, typing, pandas' warning levels through
# inspect.currentframe, logging, traceback printing). They count only when the frame is handed to
# the program: the function that asks is the program's own code, or a helper that returns frames
# to its caller (FRAME_HELPERS) called, through any number of helpers, by the program's code.
# "The program's code" is any code object not loaded from a file of the Python installation (or
# this worker): code the program compiles itself counts as its own, and code it compiles under an
# installation file's name is itself announced.

FRAME_EVENTS = {"sys._getframe"}
FRAME_ATTRS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
ALWAYS_EVENTS = {"sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                 "sys.setprofile", "sys.settrace", "marshal.loads"}
FRAME_HELPERS = {("inspect", "currentframe"), ("inspect", "stack"), ("inspect", "trace"),
                 ("inspect", "getouterframes"), ("inspect", "getinnerframes"),
                 ("logging/__init__", "<lambda>"), ("logging/__init__", "currentframe"),
                 ("traceback", "walk_stack"), ("traceback", "walk_tb"),
                 ("asyncio/base_tasks", "_task_get_stack")}
PROC_SECRETS = ("mem", "environ", "pagemap", "fd", "maps")


def _install_roots():
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for k in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            roots.add(sysconfig.get_path(k))
        except (KeyError, TypeError):
            pass
    out = set()
    for r in roots:
        if r:
            out.add(r.rstrip("/") + "/")
            out.add(os.path.realpath(r).rstrip("/") + "/")
    return tuple(sorted(out))


INSTALL_ROOTS = _install_roots()
WORKER_FILE = os.path.abspath(__file__)


def trusted_file(name):
    """A file of the Python installation or this worker (not something the program made)."""
    return type(name) is str and (name == WORKER_FILE or (
        name.startswith(INSTALL_ROOTS) and name.endswith(".py") and "/../" not in name))


def helper_key(co):
    f = co.co_filename
    for r in INSTALL_ROOTS:
        if f.startswith(r):
            rel = f[len(r):]
            break
    else:
        return None
    if rel.startswith(("python3.11/", "lib/python3.11/")):
        rel = rel.split("python3.11/", 1)[1]
    return (rel[:-3] if rel.endswith(".py") else rel, co.co_name)


def plain_path(p):
    """An open() argument as text without running the program's code (None if it is not plain)."""
    if type(p) is str:
        return p
    if type(p) is bytes:
        return p.decode("utf-8", "replace")
    if type(p) is int:
        return "<fd>"
    import pathlib

    if type(p) in (pathlib.PosixPath, pathlib.PurePosixPath):
        return str(p)
    return None


def proc_secret(path):
    """Whether a path reaches a process's memory, environment or descriptors in /proc."""
    try:
        full = os.path.normpath(os.path.join(os.getcwd(), path))
    except OSError:  # the working directory is gone: judge the path as given
        full = os.path.normpath(path)
    parts = full.split("/")
    if len(parts) < 3 or parts[1] != "proc":
        return False
    if parts[2] not in ("self", "thread-self") and not parts[2].isdigit():
        return False
    rest = parts[3:]
    if rest[:1] == ["task"]:
        rest = rest[2:]
    # The process folder itself (a dir_fd for relative opens) or one of its secrets.
    return not rest or rest[0] in PROC_SECRETS


def tamper_hook(result_fd, nonce):
    """The audit hook of one script-mode run. Forked children keep it (and announce too): a
    child holds a copy of everything. If the announcement cannot be written to the result pipe
    (closed, or another file put at its number), the process ends before the event completes."""
    tripped = []
    busy = []
    try:
        pipe_id = os.fstat(result_fd)[1:3]
    except OSError:
        pipe_id = None
    _write, _fstat, _exit, _dumps = os.write, os.fstat, os._exit, json.dumps
    _getframe = sys._getframe

    def announce(event):
        tripped.append(event)
        try:
            if _fstat(result_fd)[1:3] != pipe_id:
                raise OSError("result pipe replaced")
            _write(result_fd, (_dumps({"tampered": event, "nonce": nonce}) + "\n").encode())
        except BaseException:
            _exit(86)

    def program_asks(depth):
        """Whether the frame-asking code at `depth` is the program's (helpers skipped)."""
        f = _getframe(depth)
        while f is not None:
            co = f.f_code
            if not trusted_file(co.co_filename):
                return True
            if helper_key(co) not in FRAME_HELPERS:
                return False
            f = f.f_back
        return False

    def audit(event, args):
        if tripped or busy:
            return
        hit = False
        if event in ALWAYS_EVENTS or event.startswith("ctypes."):
            hit = True
        elif event in FRAME_EVENTS or (event == "object.__getattr__" and len(args) > 1 and
                                       type(args[1]) is str and args[1] in FRAME_ATTRS):
            busy.append(1)
            try:
                # 0: audit, 1: the code that asked (sys._getframe's caller, or the attribute's
                # reader).
                hit = program_asks(2)
            finally:
                busy.pop()
        elif event in ("compile", "code.__new__"):
            # Code under an installation file's name would pass for a library's.
            name = args[1] if len(args) > 1 else None
            if type(name) is bytes:
                name = name.decode("utf-8", "replace")
            hit = trusted_file(name) or (type(name) is str and name.startswith(INSTALL_ROOTS))
        elif event == "object.__setattr__" and len(args) > 1 and args[1] == "__code__":
            hit = True  # swapping a library function's code
        elif event in ("open", "os.chdir", "os.listdir", "os.scandir") and args:
            busy.append(1)
            try:
                p = plain_path(args[0])
                hit = (p is None and event == "open") or (p is not None and proc_secret(p))
            finally:
                busy.pop()
        if hit:
            announce(event)

    return audit


def child_main(req, run_dir, io_fd, result_w, nonce):
    """Runs in the forked child. Never returns."""
    result_fd = result_w
    try:
        limits = req.get("limits") or {}
        os.setsid()
        if TEST_GROUP is not None:
            TEST_GROUP.join()
        # stdout/stderr -> the capped log file; stdin -> /dev/null; nothing else stays open.
        os.dup2(io_fd, 1)
        os.dup2(io_fd, 2)
        # The result pipe sits at an unpredictable descriptor and each report carries a per-run
        # nonce, so code under test cannot simply write a forged "pass" to a known fd.
        result_fd = 300 + int.from_bytes(os.urandom(2), "little") % 600
        os.dup2(result_w, result_fd)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.closerange(3, result_fd)
        os.closerange(result_fd + 1, 65536)
        os.chdir(run_dir)
        set_test_env(run_dir)
        # tempfile cached the worker's temp folder at import time; make it pick up TMPDIR again.
        import tempfile

        tempfile.tempdir = None
        if "uidDropFailsInChild" in SIMULATE:
            raise OSError(errno.EPERM, "setuid refused (simulated)")
        if RUN_UID is not None:
            os.setgroups([])
            os.setgid(RUN_UID)
            os.setuid(RUN_UID)
            if os.getuid() != RUN_UID or os.geteuid() != RUN_UID or os.getegid() != RUN_UID:
                raise OSError("uid drop did not take effect")
            clear_capabilities()
        mem = int(limits.get("memoryBytes", 4 << 30))
        cpu = int(max(1, round(float(limits.get("cpuSeconds", 10)))))
        # Address space: what the imports already reserved (inherited through fork) plus the budget.
        # Torch and TensorFlow map a lot of virtual memory up front, so a fixed RLIMIT_AS would
        # either kill every test or be meaningless; a budget on top of the current size is neither.
        if mem > 0:
            base = vm_kib("VmSize") * 1024
            resource.setrlimit(resource.RLIMIT_AS, (base + mem, base + mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits.get("outputBytes", 16 << 20)),) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits.get("openFiles", 256)),) * 2)
        if RUN_UID is not None:
            # Counted per uid (threads too): each worker has its own uid, so this is per test.
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc_limit(limits),) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if SECCOMP:
            err = install_seccomp()
            if err is not None:
                raise OSError(err)
        # No other process (a child it spawns included) may read this one's memory, where the
        # nonce is; its own forked children keep the audit hook below.
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except BaseException as e:
        try:
            os.write(result_fd, (json.dumps({"setup": "%s: %s" % (type(e).__name__, e),
                                             "nonce": nonce}) + "\n").encode())
        finally:
            os._exit(70)

    me = os.getpid()

    def report(obj):
        # Processes the test forked inherit this code path (and fd 3): only the test process reports.
        if os.getpid() != me:
            return
        obj["nonce"] = nonce
        data = (json.dumps(obj)[:16000] + "\n").encode()
        try:
            os.write(result_fd, data)
        except OSError:
            pass

    mode = req.get("mode")
    try:
        g = {"__name__": "__main__", "__builtins__": __builtins__}
        if mode == "ds1000":
            context = req["context"]
            solution = req["solution"]
            # DS-1000's test program: code_context, then test_execution(code) and, when the
            # context defines it, test_string(code).
            exec(compile(context, "<code_context>", "exec"), g)
            g["test_execution"](solution)
            if "test_string(" in context and "test_string" in g:
                g["test_string"](solution)
        else:
            # The program and this reporting code share an interpreter: what cannot be prevented
            # here is detected. Frame and heap introspection or ctypes (the ways to reach report()
            # and its nonce) are announced to the worker at once, before the program gets the
            # object back, and turn any pass into `tampered` (see tamper_hook).
            src = req["code"]
            code = compile(src, "<sandbox>", "exec")
            # inspect.getsource() and tracebacks can show the program's own lines.
            import linecache

            linecache.cache["<sandbox>"] = (len(src), None, src.splitlines(True), "<sandbox>")
            audit = tamper_hook(result_fd, nonce)
            sys.addaudithook(audit)
            exec(code, g)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        report({"ok": True})
        os._exit(0)
    except SystemExit as e:
        # As upstream human-eval: leaving early is not passing, whatever the exit code.
        report({"ok": False, "type": "SystemExit",
                "tb": "SystemExit: %r (the program called sys.exit()/exit()/quit())" % (e.code,)})
        os._exit(1)
    except BaseException as e:
        try:
            # Drop this function's own frame: the traceback starts in the test's code.
            first = e.__traceback__.tb_next if e.__traceback__ is not None else None
            tb = "".join(traceback.format_exception(type(e), e, first))
        except BaseException:
            tb = repr(e)
        report({"ok": False, "type": type(e).__name__, "tb": tb[-TAIL_BYTES:],
                "syntax": isinstance(e, SyntaxError)})
        os._exit(1)


run_counter = 0
RESULT_CAP = 1 << 16


def read_tail(path, n=TAIL_BYTES):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace"), size
    except OSError:
        return "", 0


def clean_uid_files(uid):
    """Removes files the test's uid left in the shared scratch places (/tmp, /dev/shm)."""
    for top in ("/tmp", "/dev/shm", "/var/tmp"):
        try:
            entries = os.listdir(top)
        except OSError:
            continue
        for name in entries:
            p = os.path.join(top, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_uid != uid:
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
            except OSError:
                pass


def descendants():
    """Live processes below this one (the reaper helper excluded), from /proc's parent links."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(b")") + 2:].split()
        if rest[0] in (b"Z", b"X"):
            continue
        children.setdefault(int(rest[1]), []).append(int(name))
    out, todo = [], [os.getpid()]
    skip = REAPER[0] if REAPER is not None else -1
    while todo:
        for c in children.get(todo.pop(), []):
            if c != skip:
                out.append(c)
                todo.append(c)
    return out


def kill_descendants():
    kill_until_gone(descendants, 200)


TEST_GROUP = None  # the running test's TestGroup (read by the forked children)


def run_one(req):
    global run_counter, TEST_GROUP
    if REFUSE is not None:
        return {"status": "sandbox_error", "seconds": 0.0, "errorType": "IsolationRefused",
                "stderrTail": REFUSE}
    run_counter += 1
    limits = req.get("limits") or {}
    TEST_GROUP = None
    if CGROUP:
        try:
            TEST_GROUP = TestGroup("t%d" % run_counter, limits)
        except OSError as e:
            # It worked at start-up: refuse this test rather than run it without its limits.
            return {"status": "sandbox_error", "seconds": 0.0, "errorType": "SandboxSetup",
                    "stderrTail": "the test's cgroup could not be made: %s" % e}
    try:
        return run_in_group(req, limits)
    finally:
        if TEST_GROUP is not None:
            TEST_GROUP.kill()
            TEST_GROUP.remove()
            TEST_GROUP = None


def disk_full():
    """Which bound a full scratch mount hit (after a test, before its files are removed)."""
    for top in (WORK_ROOT, "/tmp", "/var/tmp"):
        try:
            st = os.statvfs(top)
        except OSError:
            continue
        if st.f_files > 0 and st.f_ffree == 0:
            return "FileCountLimit"
        if st.f_bavail * st.f_frsize < (64 << 10):
            return "DiskLimit"
    return None


def run_in_group(req, limits):
    wall = float(limits.get("wallSeconds", 10))
    out_cap = int(limits.get("outputBytes", 16 << 20))
    run_dir = os.path.join(WORK_ROOT, "run-%d" % run_counter)
    io_path = os.path.join(WORK_ROOT, "io-%d.log" % run_counter)
    os.mkdir(run_dir, 0o700)
    if RUN_UID is not None:
        os.chown(run_dir, RUN_UID, RUN_UID)
    io_fd = os.open(io_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    t_start = time.monotonic()
    spid = None
    judge_dir = None
    if req.get("mode") == "ds1000":
        # The solver first, so that nothing of this run (nonce, verdict pipe, judge's folder) exists
        # in the memory or the descriptors it inherits.
        job_r, job_w = os.pipe()
        rep_r, rep_w = os.pipe()
        spid = os.fork()
        if spid == 0:
            os.close(job_w)
            os.close(rep_r)
            solver_main(req, run_dir, io_fd, job_r, rep_w)
            os._exit(71)
        os.close(job_r)
        os.close(rep_w)
        judge_dir = os.path.join(WORK_ROOT, "judge-%d-%s" % (run_counter, os.urandom(8).hex()))
        os.mkdir(judge_dir, 0o700)
    result_r, result_w = os.pipe()
    nonce = os.urandom(16).hex()
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        if spid is not None:
            judge_main(req, judge_dir, run_dir, io_fd, job_w, rep_r, result_w, nonce)
        else:
            child_main(req, run_dir, io_fd, result_w, nonce)
        os._exit(71)
    if spid is not None:
        os.close(job_w)
        os.close(rep_r)
    os.close(result_w)
    os.close(io_fd)
    s_status = None
    s_killed = False
    # Wait with a wall-clock deadline. The pidfd lets us poll the child and the result pipe together.
    timed_out = False
    stopped = False
    status = None
    result = b""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(result_r, select.POLLIN)
    deadline = t_start + wall
    result_open = True
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready = poller.poll(min(left, 0.05) * 1000)
        if not ready and TEST_GROUP is not None and TEST_GROUP.oom_kills() > 0:
            break  # over the test's memory: end it now (classified below), not at the deadline
        for fd, ev in ready:
            if fd == result_r and result_open:
                chunk = os.read(result_r, 65536)
                if chunk:
                    if len(result) < RESULT_CAP:  # a test flooding the pipe cannot grow us
                        result += chunk
                else:
                    poller.unregister(result_r)
                    result_open = False
        wpid, st = os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
        if wpid == pid:
            if os.WIFSTOPPED(st):
                stopped = True
                break
            status = st
            break
        if spid is not None and s_status is None:
            wpid, st = os.waitpid(spid, os.WNOHANG | os.WUNTRACED)
            if wpid == spid:
                if os.WIFSTOPPED(st):
                    stopped = True
                    break
                s_status = st
    t_end = time.monotonic()
    s_killed = False
    if spid is not None:
        # When the judge saw the solver's reply break off, give the solver a moment to finish
        # ending (an exit or a signal says more than "broke the protocol").
        while result_open and select.select([result_r], [], [], 0)[0]:
            chunk = os.read(result_r, 65536)
            if not chunk:
                poller.unregister(result_r)
                result_open = False
            elif len(result) < RESULT_CAP:
                result += chunk
        grace = time.monotonic() + (0.5 if b'"died": true' in result else 0)
        while s_status is None:
            wpid, st = os.waitpid(spid, os.WNOHANG)
            if wpid == spid:
                s_status = st
            elif time.monotonic() >= grace:
                s_killed = True  # still running when the judge was done
                break
            else:
                time.sleep(0.002)
        try:
            os.killpg(spid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(spid, signal.SIGKILL)
        except OSError:
            pass
        if s_status is None:
            _, s_status = os.waitpid(spid, 0)
    if status is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
    group = {}
    if TEST_GROUP is not None:
        # Every process of the test's group, whatever its uid or session; then the counters.
        TEST_GROUP.kill()
        group = TEST_GROUP.facts()
        group["oomKills"] = TEST_GROUP.oom_kills()
        group["pidsRefused"] = TEST_GROUP.pids_refused()
    # Everything the test started (daemons in new sessions included) dies with its uid.
    if RUN_UID is not None:
        if uid_procs(RUN_UID):
            reap_uid(RUN_UID)
            # The killed processes were re-parented to us (subreaper): collect them.
            end = time.monotonic() + 5
            while uid_procs(RUN_UID) and time.monotonic() < end:
                reap_zombies()
                time.sleep(0.001)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        # Without a uid of its own, a test's daemons (new sessions) are found as our descendants:
        # we are a child subreaper, so orphans are re-parented to us rather than to init.
        kill_descendants()
    reap_zombies()
    while result_open:
        r, _, _ = select.select([result_r], [], [], 0)
        if not r:
            break
        chunk = os.read(result_r, 65536)
        if not chunk:
            break
        if len(result) < RESULT_CAP:
            result += chunk
    os.close(pidfd)
    os.close(result_r)
    tail, out_size = read_tail(io_path)
    disk = disk_full() if FILES_BOUNDED else None
    shutil.rmtree(run_dir, ignore_errors=True)
    if judge_dir is not None:
        shutil.rmtree(judge_dir, ignore_errors=True)
    try:
        os.unlink(io_path)
    except OSError:
        pass
    if RUN_UID is not None:
        clean_uid_files(RUN_UID)
    clean_sysv()
    seconds = t_end - t_start
    out = classify(status, result, tail, out_size, out_cap, seconds, timed_out, stopped, limits,
                   nonce, s_status, s_killed, group, disk)
    if group:
        out["resources"] = group
    return out


def parse_messages(result, nonce):
    """The report and any tamper notes: one JSON object a line; a line without the run's nonce
    (forged, or garbled) is ignored."""
    report, tampered = None, None
    for line in result.decode("utf-8", "replace").split("\n"):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if not isinstance(m, dict) or m.get("nonce") != nonce:
            continue
        if "tampered" in m:
            tampered = tampered or str(m["tampered"])[:200]
        elif report is None:
            report = m
    return report, tampered


def classify(status, result, tail, out_size, out_cap, seconds, timed_out, stopped, limits, nonce,
             s_status=None, s_killed=False, group=None, disk=None):
    out = classify_run(status, result, tail, out_size, out_cap, seconds, timed_out, stopped,
                       limits, nonce, s_status, s_killed, disk)
    group = group or {}
    if group.get("oomKills", 0) > 0 and out["status"] not in ("sandbox_error",):
        # The kernel killed a process of the test for the test's memory (all its processes
        # together): a memory failure, whatever the test's processes reported afterwards.
        mib = group.get("memoryMaxBytes", 0) / 2 ** 20
        out.update(status="memory", errorType="MemoryLimit",
                   stderrTail=(out.get("stderrTail", "") + "\nthe test's processes together went "
                               "over its memory limit (%.0f MiB, cgroup %s)"
                               % (mib, group.get("cgroup")))[-TAIL_BYTES:])
    elif group.get("pidsRefused", 0) > 0 and out["status"] in ("fail", "crash"):
        out["errorType"] = "ProcessLimit"
        out["stderrTail"] = (out.get("stderrTail", "") + "\nthe test hit its process limit (%s, "
                             "cgroup %s)" % (group.get("pidsMax"), group.get("cgroup")))[-TAIL_BYTES:]
    return out


def classify_run(status, result, tail, out_size, out_cap, seconds, timed_out, stopped, limits,
                 nonce, s_status, s_killed, disk):
    out = {"seconds": round(seconds, 6)}
    parsed, tampered = parse_messages(result, nonce)
    if timed_out:
        # First: at the deadline the solver is killed before the judge, so the judge may still
        # have reported the solver's end ("died") before it was killed in turn.
        tb = parsed.get("tb", "") if isinstance(parsed, dict) else ""
        out.update(status="timeout", errorType="WallTimeout",
                   stderrTail=(tail + ("\n" if tail and tb else "") + tb)[-TAIL_BYTES:])
        return out
    if isinstance(parsed, dict) and parsed.get("died") is True and s_killed:
        out.update(status="fail", errorType="ProtocolError",
                   stderrTail=(tail + "\nthe solution's process broke the result protocol")
                   [-TAIL_BYTES:])
        return out
    if isinstance(parsed, dict) and parsed.get("died") is True and s_status is not None:
        # The judge saw the solver end without handing back a result: judge by how it ended.
        status, parsed = s_status, None
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 70:
            out.update(status="sandbox_error", errorType="SandboxSetup",
                       stderrTail="the solution's process could not be set up (uid drop or "
                                  "limits refused); nothing of the test was run")
            return out
    tb = parsed.get("tb", "") if isinstance(parsed, dict) else ""
    combined = (tail + ("\n" if tail and tb else "") + tb)[-TAIL_BYTES:]
    out["stderrTail"] = combined
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if timed_out:
        out.update(status="timeout", errorType="WallTimeout")
        return out
    if stopped:
        out.update(status="crash", errorType="Stopped")
        return out
    if sig in (signal.SIGXCPU,) or (sig == signal.SIGKILL and parsed is None and
                                    cpu_exhausted(limits, seconds)):
        out.update(status="timeout", errorType="CpuTimeout")
        return out
    if isinstance(parsed, dict) and "setup" in parsed:
        out.update(status="sandbox_error", errorType="SandboxSetup",
                   stderrTail=str(parsed["setup"])[-TAIL_BYTES:])
        return out
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    if tampered is not None and isinstance(parsed, dict) and parsed.get("ok") is True:
        out.update(status="tampered", errorType="Tampered",
                   stderrTail=(combined + "\nthe program reached into the harness (%s)" %
                               tampered)[-TAIL_BYTES:])
        return out
    if isinstance(parsed, dict) and parsed.get("ok") is True and code == 0:
        out["status"] = "pass"
        return out
    if isinstance(parsed, dict) and parsed.get("ok") is False:
        etype = parsed.get("type") or "Exception"
        out["errorType"] = etype
        low = tb.lower()
        if parsed.get("syntax"):
            out["status"] = "syntax_error"
        elif etype == "MemoryError" or any(m in low for m in MEMORY_MARKERS):
            out["status"] = "memory"
        elif out_size >= out_cap and ("file too large" in low or "errno 27" in low):
            out.update(status="crash", errorType="OutputLimit")
        elif disk is not None and ("no space left" in low or "errno 28" in low):
            # The scratch space is full (bytes or files): the test's own bound, said plainly.
            what = "file count" if disk == "FileCountLimit" else "bytes"
            out.update(status="crash", errorType=disk,
                       stderrTail=(combined + "\nthe test filled its scratch space (%s)" % what)
                       [-TAIL_BYTES:])
        elif etype == "RecursionError":
            out["status"] = "fail"
        else:
            out["status"] = "fail"
        return out
    # No result message: the process died or exited without reporting.
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        out["errorType"] = name
        if sig == signal.SIGKILL:
            # The kernel's OOM killer, or a test that killed itself.
            out["status"] = "memory" if oom_likely(tail) else "crash"
        elif sig == signal.SIGXFSZ:
            out.update(status="crash", errorType="OutputLimit")
        else:
            out["status"] = "crash"
        return out
    out.update(status="crash", errorType="Exit%s" % code)
    return out


def cpu_exhausted(limits, seconds):
    return seconds >= float(limits.get("cpuSeconds", 10)) * 0.9


def oom_likely(tail):
    t = tail.lower()
    return any(m in t for m in MEMORY_MARKERS)


def main():
    send({
        "ready": True,
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "importSeconds": round(import_seconds, 3),
        "importErrors": import_errors,
        "uid": RUN_UID,
        "seccomp": SECCOMP,
        "cgroup": CGROUP["version"] if CGROUP else None,
        "filesBounded": FILES_BOUNDED,
        "notes": notes,
        "vmSizeKiB": vm_kib("VmSize"),
        "vmRssKiB": vm_kib("VmRSS"),
    })
    while True:
        line = STDIN.readline()
        if not line:
            break
        try:
            req = json.loads(line)
        except ValueError:
            continue
        rid = req.get("id")
        try:
            rep = run_one(req)
        except BaseException as e:  # the worker itself must survive any request
            rep = {"status": "sandbox_error", "seconds": 0.0, "errorType": type(e).__name__,
                   "stderrTail": traceback.format_exc()[-TAIL_BYTES:]}
        rep["id"] = rid
        send(rep)


if __name__ == "__main__":
    main()
