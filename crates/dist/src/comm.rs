//! MPI set-up and the collectives the rest of the crate uses, each with a watchdog: a
//! collective that does not complete within the communicator's timeout (a peer rank
//! died, hangs, or skipped it) returns [`DistError::Timeout`] instead of blocking forever,
//! and MPI failures come back as [`DistError::Mpi`] instead of aborting.
//!
//! Every operation is started non-blocking and then polled with `MPI_Test` until it is
//! done or the deadline passes. MPI is initialised with `MPI_THREAD_SERIALIZED` and
//! every call into it holds one process-wide lock, so a [`Comm`] may be used from any
//! thread (one call at a time is what `SERIALIZED` asks).

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mpi::datatype::Equivalence;
use mpi::environment::{Threading, Universe};
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::Communicator;
use tapegrad::{DType, Element, Tensor};

/// Why a distributed operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// MPI was already initialised in this process, or could not be.
    #[error("MPI could not be initialised ({0})")]
    Init(String),
    /// The MPI library does not give the thread support the crate needs.
    #[error("MPI gives thread support {provided:?}; tapegrad-dist needs at least Serialized (build OpenMPI with thread support)")]
    Threading {
        /// What the library provided.
        provided: Threading,
    },
    /// An MPI call returned an error code.
    #[error("rank {rank}: {op} failed: MPI error {code}: {message}")]
    Mpi {
        /// This rank.
        rank: usize,
        /// What was being done.
        op: String,
        /// The MPI error code.
        code: i32,
        /// MPI's description of it.
        message: String,
    },
    /// A collective did not complete in time: another rank died, hangs, or did not call it.
    #[error("rank {rank}: {op} did not complete within {seconds:.1} s: another rank has died, hangs, or did not take part (set the limit with TAPEGRAD_DIST_TIMEOUT=seconds); this communicator can no longer be used, stop the job (Comm::abort)")]
    Timeout {
        /// This rank.
        rank: usize,
        /// What was being done.
        op: String,
        /// How long it waited.
        seconds: f64,
    },
    /// The local backward pass failed.
    #[error(transparent)]
    Backward(#[from] tapegrad::BackwardError),
    /// The ranks disagree on something that must be the same everywhere.
    #[error("rank {rank}: {message}")]
    Mismatch {
        /// This rank.
        rank: usize,
        /// What differs.
        message: String,
    },
}

/// The default collective timeout: `TAPEGRAD_DIST_TIMEOUT` seconds if set, else 300 s.
pub fn default_timeout() -> Duration {
    std::env::var("TAPEGRAD_DIST_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(300), Duration::from_secs_f64)
}

/// One lock for every MPI call in the process (`MPI_THREAD_SERIALIZED`).
static MPI_LOCK: Mutex<()> = Mutex::new(());

fn mpi_lock() -> MutexGuard<'static, ()> {
    MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// An initialised MPI environment; MPI is finalised when it is dropped (at the end of
/// `main`, after every collective has completed).
///
/// ```no_run
/// let dist = tapegrad_dist::Dist::init().expect("run under mpirun");
/// let world = dist.world();
/// println!("rank {} of {}", world.rank(), world.size());
/// ```
pub struct Dist {
    world: Comm,
    _universe: Universe,
}

impl Dist {
    /// Initialises MPI (thread level `SERIALIZED`) and returns the environment.
    ///
    /// # Errors
    /// If MPI is already initialised or gives less thread support.
    pub fn init() -> Result<Dist, DistError> {
        let (universe, provided) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| DistError::Init("MPI is already initialised".into()))?;
        if provided < Threading::Serialized {
            return Err(DistError::Threading { provided });
        }
        let world = universe.world();
        let raw = world.as_raw();
        let comm = Comm {
            raw: Arc::new(RawComm(raw)),
            rank: world.rank() as usize,
            size: world.size() as usize,
            timeout: default_timeout(),
        };
        // SAFETY: `raw` is MPI_COMM_WORLD of an initialised MPI; ERRORS_RETURN is a
        // predefined handler.
        let rc = {
            let _g = mpi_lock();
            unsafe { ffi::MPI_Comm_set_errhandler(raw, ffi::RSMPI_ERRORS_RETURN) }
        };
        comm.check(rc, "MPI_Comm_set_errhandler")?;
        Ok(Dist {
            world: comm,
            _universe: universe,
        })
    }

    /// All the ranks of the job (`MPI_COMM_WORLD`).
    pub fn world(&self) -> &Comm {
        &self.world
    }
}

/// An MPI communicator handle. Never freed: communicators made by [`Comm::duplicate`]
/// live until MPI is finalised, so a handle held by a recorded op can never dangle.
struct RawComm(ffi::MPI_Comm);

// SAFETY: an MPI_Comm is an opaque handle that is never mutated through this wrapper;
// every MPI call made with it holds `MPI_LOCK`, which is what MPI_THREAD_SERIALIZED asks.
unsafe impl Send for RawComm {}
// SAFETY: as above.
unsafe impl Sync for RawComm {}

/// A group of ranks that run collectives together (cheap to clone), with a timeout on
/// every collective.
#[derive(Clone)]
pub struct Comm {
    raw: Arc<RawComm>,
    rank: usize,
    size: usize,
    timeout: Duration,
}

/// Element types the collectives move: `f32` and `f64`.
pub trait Reducible: Element + Equivalence + Copy + Default {}
impl Reducible for f32 {}
impl Reducible for f64 {}

impl Comm {
    /// This process's rank in the communicator.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The time a collective may take before it fails with [`DistError::Timeout`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same communicator with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Comm {
        self.timeout = timeout;
        self
    }

    /// A new communicator over the same ranks whose collectives are ordered
    /// independently of this one's (`MPI_Comm_dup`); a collective call on every rank.
    ///
    /// # Errors
    /// If MPI fails.
    pub fn duplicate(&self) -> Result<Comm, DistError> {
        // SAFETY: MPI_COMM_NULL is a valid placeholder that MPI_Comm_dup overwrites.
        let mut new = unsafe { ffi::RSMPI_COMM_NULL };
        let rc = {
            let _g = mpi_lock();
            // SAFETY: `self.raw` is a live communicator; `new` is a valid out pointer.
            unsafe {
                let rc = ffi::MPI_Comm_dup(self.raw.0, &mut new);
                if rc == 0 {
                    ffi::MPI_Comm_set_errhandler(new, ffi::RSMPI_ERRORS_RETURN)
                } else {
                    rc
                }
            }
        };
        self.check(rc, "MPI_Comm_dup")?;
        Ok(Comm {
            raw: Arc::new(RawComm(new)),
            ..self.clone()
        })
    }

    /// Stops every rank of the job: prints `message` on this rank and calls `MPI_Abort`
    /// (mpirun then kills the other ranks and exits with `code`).
    pub fn abort(&self, code: i32, message: &str) -> ! {
        eprintln!(
            "tapegrad-dist: rank {}: aborting the job: {message}",
            self.rank
        );
        // SAFETY: aborting needs only a valid communicator; no lock: another thread may
        // hold it while stuck, and abort must still go through.
        unsafe {
            ffi::MPI_Abort(self.raw.0, code);
        }
        std::process::exit(code)
    }

    /// Sums `data` over all ranks, in place, on every rank.
    ///
    /// # Errors
    /// [`DistError::Timeout`] or [`DistError::Mpi`].
    pub fn all_reduce_sum<T: Reducible>(&self, data: &mut [T], op: &str) -> Result<(), DistError> {
        let reduced = self.start_all_reduce_sum(data.to_vec(), op)?.wait()?;
        data.copy_from_slice(&reduced);
        Ok(())
    }

    /// Starts summing `data` over all ranks (`MPI_Iallreduce`); the result comes from
    /// [`Pending::wait`]. Every rank must start its reductions in the same order.
    ///
    /// # Errors
    /// [`DistError::Mpi`] if MPI refuses to start it.
    pub fn start_all_reduce_sum<T: Reducible>(
        &self,
        data: Vec<T>,
        op: &str,
    ) -> Result<Pending<T>, DistError> {
        let recv = vec![T::default(); data.len()];
        let mut pending = self.pending(data, recv, op)?;
        let count = pending.count()?;
        let rc = {
            let _g = mpi_lock();
            // SAFETY: both buffers hold `count` elements and stay where they are (heap
            // buffers owned by `pending`) until the request completes: `wait` and `Drop`
            // complete it, or leak the buffers if it never does.
            unsafe {
                ffi::MPI_Iallreduce(
                    pending.send.as_ptr() as *const c_void,
                    pending.recv.as_mut_ptr() as *mut c_void,
                    count,
                    T::equivalent_datatype().as_raw(),
                    ffi::RSMPI_SUM,
                    self.raw.0,
                    &mut pending.request,
                )
            }
        };
        pending.started(rc)?;
        Ok(pending)
    }

    /// Copies `data` from rank `root` to every rank, in place.
    ///
    /// # Errors
    /// [`DistError::Timeout`] or [`DistError::Mpi`].
    pub fn broadcast<T: Reducible>(
        &self,
        data: &mut [T],
        root: usize,
        op: &str,
    ) -> Result<(), DistError> {
        let mut pending = self.pending(Vec::new(), data.to_vec(), op)?;
        let count = pending.count()?;
        let rc = {
            let _g = mpi_lock();
            // SAFETY: the buffer holds `count` elements and stays where it is (a heap
            // buffer owned by `pending`) until the request completes: `wait` and `Drop`
            // complete it, or leak the buffer if it never does.
            unsafe {
                ffi::MPI_Ibcast(
                    pending.recv.as_mut_ptr() as *mut c_void,
                    count,
                    T::equivalent_datatype().as_raw(),
                    root as c_int,
                    self.raw.0,
                    &mut pending.request,
                )
            }
        };
        pending.started(rc)?;
        data.copy_from_slice(&pending.wait()?);
        Ok(())
    }

    /// Waits until every rank has called it.
    ///
    /// # Errors
    /// [`DistError::Timeout`] or [`DistError::Mpi`].
    pub fn barrier(&self, op: &str) -> Result<(), DistError> {
        // SAFETY: reading a predefined handle constant.
        let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
        let rc = {
            let _g = mpi_lock();
            // SAFETY: a barrier touches no buffer.
            unsafe { ffi::MPI_Ibarrier(self.raw.0, &mut request) }
        };
        self.check(rc, op)?;
        self.wait(&mut request, op)
    }

    /// Sums a tensor over all ranks (`f32` or `f64`); the result has its shape and dtype.
    ///
    /// # Errors
    /// [`DistError::Timeout`] or [`DistError::Mpi`].
    pub fn all_reduce_tensor(&self, t: &Tensor, op: &str) -> Result<Tensor, DistError> {
        fn go<T: Reducible>(c: &Comm, t: &Tensor, op: &str) -> Result<Tensor, DistError> {
            let mut v = t.to_vec::<T>();
            c.all_reduce_sum(&mut v, op)?;
            Ok(Tensor::from_vec(v, t.shape()))
        }
        match t.dtype() {
            DType::F32 => go::<f32>(self, t, op),
            _ => go::<f64>(self, t, op),
        }
    }

    /// Polls `request` until it completes or the timeout passes.
    fn wait(&self, request: &mut ffi::MPI_Request, op: &str) -> Result<(), DistError> {
        let start = Instant::now();
        loop {
            let mut flag: c_int = 0;
            let rc = {
                let _g = mpi_lock();
                // SAFETY: `request` is a live request handle; the status is ignored.
                unsafe { ffi::MPI_Test(request, &mut flag, ffi::RSMPI_STATUS_IGNORE) }
            };
            self.check(rc, op)?;
            if flag != 0 {
                return Ok(());
            }
            if start.elapsed() >= self.timeout {
                return Err(DistError::Timeout {
                    rank: self.rank,
                    op: op.to_string(),
                    seconds: start.elapsed().as_secs_f64(),
                });
            }
            std::thread::yield_now();
        }
    }

    fn check(&self, rc: c_int, op: &str) -> Result<(), DistError> {
        if rc == 0 {
            Ok(())
        } else {
            Err(self.mpi_error(rc, op))
        }
    }

    fn mpi_error(&self, code: c_int, op: &str) -> DistError {
        let mut buf = vec![0 as c_char; 1024];
        let mut len: c_int = 0;
        // SAFETY: the buffer is larger than MPI_MAX_ERROR_STRING.
        let rc = unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr(), &mut len) };
        let message = if rc == 0 {
            let bytes: Vec<u8> = buf[..len.max(0) as usize]
                .iter()
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            "no description".to_string()
        };
        DistError::Mpi {
            rank: self.rank,
            op: op.to_string(),
            code,
            message,
        }
    }

    fn pending<T: Reducible>(
        &self,
        send: Vec<T>,
        recv: Vec<T>,
        op: &str,
    ) -> Result<Pending<T>, DistError> {
        Ok(Pending {
            send,
            recv,
            // SAFETY: reading a predefined handle constant.
            request: unsafe { ffi::RSMPI_REQUEST_NULL },
            comm: self.clone(),
            op: op.to_string(),
            done: true, // nothing in flight until `started`
        })
    }

    pub(crate) fn mismatch(&self, message: String) -> DistError {
        DistError::Mismatch {
            rank: self.rank,
            message,
        }
    }
}

/// A collective in flight (from [`Comm::start_all_reduce_sum`]). It owns its buffers;
/// dropping it waits for it.
pub struct Pending<T: Reducible> {
    send: Vec<T>,
    recv: Vec<T>,
    request: ffi::MPI_Request,
    comm: Comm,
    op: String,
    done: bool,
}

impl<T: Reducible> Pending<T> {
    /// The element count as MPI takes it.
    fn count(&self) -> Result<c_int, DistError> {
        c_int::try_from(self.recv.len()).map_err(|_| {
            self.comm.mismatch(format!(
                "{}: {} elements are more than one MPI call moves",
                self.op,
                self.recv.len()
            ))
        })
    }

    /// Records the return code of the call that started the request.
    fn started(&mut self, rc: c_int) -> Result<(), DistError> {
        self.comm.check(rc, &self.op)?;
        self.done = false;
        Ok(())
    }

    /// Lets MPI make progress; `Ok(true)` once the operation is complete.
    ///
    /// # Errors
    /// [`DistError::Mpi`].
    pub fn poll(&mut self) -> Result<bool, DistError> {
        if self.done {
            return Ok(true);
        }
        let mut flag: c_int = 0;
        let rc = {
            let _g = mpi_lock();
            // SAFETY: a live request handle; the status is ignored.
            unsafe { ffi::MPI_Test(&mut self.request, &mut flag, ffi::RSMPI_STATUS_IGNORE) }
        };
        if let Err(e) = self.comm.check(rc, &self.op) {
            self.give_up();
            return Err(e);
        }
        self.done = flag != 0;
        Ok(self.done)
    }

    /// Waits for the result (at most the communicator's timeout) and returns it.
    ///
    /// # Errors
    /// [`DistError::Timeout`] or [`DistError::Mpi`]; the buffers are then given up to MPI.
    pub fn wait(mut self) -> Result<Vec<T>, DistError> {
        if !self.done {
            let comm = self.comm.clone();
            if let Err(e) = comm.wait(&mut self.request, &self.op) {
                self.give_up();
                return Err(e);
            }
            self.done = true;
        }
        Ok(std::mem::take(&mut self.recv))
    }

    /// The request will never be completed: MPI may still write into the buffers, so
    /// they are leaked rather than freed.
    fn give_up(&mut self) {
        std::mem::forget(std::mem::take(&mut self.send));
        std::mem::forget(std::mem::take(&mut self.recv));
        self.done = true;
    }
}

impl<T: Reducible> Drop for Pending<T> {
    fn drop(&mut self) {
        if !self.done {
            let comm = self.comm.clone();
            if comm.wait(&mut self.request, &self.op).is_err() {
                self.give_up();
            }
        }
    }
}
