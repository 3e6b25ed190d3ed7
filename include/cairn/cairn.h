/* Cairn's C API: opaque handles over the C++ library, for C and (through the `cairn` module) Fortran.
 *
 * Conventions
 * -----------
 * - Every function returns a status: CAIRN_SUCCESS (0) or one of the CAIRN_ERR_* codes, whose values
 *   are those of cairn::ErrorCode. No exception ever crosses this boundary.
 * - After a failure, cairn_last_error() returns the message of that failure on the calling thread:
 *   it names the C function, the entry or argument at fault and the rank. After a success the
 *   message is reset to "" (empty string), so cairn_last_error() always describes the latest call
 *   made on this thread.
 * - A NULL handle or pointer argument gives CAIRN_ERR_USAGE with a message naming the argument.
 * - "Collective" means: call it on every rank of the handle's communicator, in the same order.
 *   The library duplicates the communicator and never communicates on the caller's.
 * - A state describes caller memory: it stores the pointers it is given (arrays, blobs, scalars),
 *   not copies. The memory must stay valid until the save or load that uses it returns (for
 *   cairn_async_save: until it returns; the bytes are staged by then).
 *
 * Array layouts and Fortran
 * -------------------------
 * An array has a global shape, and each rank holds zero or more contiguous chunks of it, each an
 * offset and a shape in the global index space. Offsets are 0-based. Shapes and offsets are always
 * given in the array's logical dimension order, whatever the memory order of the chunk:
 *
 * - cairn_state_add_array: the chunk is row-major (C order, the last index varies fastest). Chunk
 *   element (i0, ..., in) is at data[((i0 * s1 + i1) * s2 + ...) + in] and is global element
 *   (offset[0] + i0, ..., offset[n] + in).
 * - cairn_state_add_array_colmajor: the chunk is column-major (Fortran order, the first index varies
 *   fastest). The dimensions are listed as Fortran lists them: a Fortran array `a(nx, ny)` holding
 *   the block of global rows ox+1..ox+nx and columns oy+1..oy+ny of a global (NX, NY) array is
 *   added with global_shape {NX, NY}, offset {ox, oy}, local_shape {nx, ny}. The checkpoint stores
 *   the global array with Fortran's dimension order, so h5py shows a dataset of shape (NX, NY)
 *   whose element [i, j] is the Fortran element (i+1, j+1). (Fortran HDF5 programs usually show
 *   up transposed in h5py; Cairn's do not.) A C program loading the same entry row-major with
 *   global shape {NX, NY} gets the same logical elements, in C order.
 *
 * A checkpoint saved with any decomposition and layout loads into any other (resharding).
 */
#ifndef CAIRN_CAIRN_H
#define CAIRN_CAIRN_H

#include <mpi.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define CAIRN_C_API __attribute__((visibility("default")))
#else
#define CAIRN_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes (values of cairn::ErrorCode) ---- */

#define CAIRN_SUCCESS 0           /**< The call succeeded. */
#define CAIRN_ERR_USAGE 1         /**< Invalid argument or request (NULL, bad dtype, shape mismatch). */
#define CAIRN_ERR_STORAGE 2       /**< Reading or writing files failed (missing checkpoint, I/O). */
#define CAIRN_ERR_COMMUNICATION 3 /**< An MPI call failed. */
#define CAIRN_ERR_CORRUPT 4       /**< A checkpoint exists but is damaged or not Cairn's. */
#define CAIRN_ERR_UNSUPPORTED 5   /**< Valid, but this build or format cannot do it. */
#define CAIRN_ERR_INTERNAL 6      /**< A bug in Cairn (or an unexpected exception). */
#define CAIRN_ERR_DEVICE 7        /**< A CUDA call failed. */

/* ---- element types (values of cairn::DType) ---- */

typedef enum cairn_dtype {
  CAIRN_INT8 = 0,
  CAIRN_INT16 = 1,
  CAIRN_INT32 = 2,
  CAIRN_INT64 = 3,
  CAIRN_UINT8 = 4,
  CAIRN_UINT16 = 5,
  CAIRN_UINT32 = 6,
  CAIRN_UINT64 = 7,
  CAIRN_FLOAT32 = 8,
  CAIRN_FLOAT64 = 9,
  CAIRN_BOOL = 10, /**< One byte, 0 or 1. */
  CAIRN_FLOAT16 = 11,
  CAIRN_BFLOAT16 = 12
} cairn_dtype;

/* ---- memory order of a chunk (values of cairn::Layout) ---- */

typedef enum cairn_layout {
  CAIRN_ROW_MAJOR = 0,   /**< C order: the last index varies fastest. */
  CAIRN_COLUMN_MAJOR = 1 /**< Fortran order: the first index varies fastest. */
} cairn_layout;

/* ---- lossless compression of an array on disk (values of cairn::Compression) ---- */

typedef enum cairn_compression {
  CAIRN_COMPRESSION_NONE = 0,
  CAIRN_COMPRESSION_DEFLATE = 1, /**< zlib's deflate, levels 1-9: every HDF5 tool reads it. */
  CAIRN_COMPRESSION_ZSTD = 2     /**< Zstandard, levels 1-22: HDF5 tools need the zstd filter plugin. */
} cairn_compression;

/* ---- opaque handles ---- */

typedef struct cairn_checkpointer cairn_checkpointer; /**< Saves and loads states over a communicator. */
typedef struct cairn_state cairn_state;               /**< A list of named entries in caller memory. */
typedef struct cairn_request cairn_request;           /**< One asynchronous save in flight. */
typedef struct cairn_manager cairn_manager;           /**< Checkpoints of one run under a root directory. */

/* ---- library ---- */

/** The library's version, "major.minor.patch". Not collective; never fails. */
CAIRN_C_API const char* cairn_version(void);

/** The message of the latest failed call on this thread, or "" when the latest call succeeded.
 *  The pointer stays valid until the next Cairn call on this thread. Never NULL. */
CAIRN_C_API const char* cairn_last_error(void);

/* ---- checkpointer ---- */

/** Collective over `comm`: creates a checkpointer over a duplicate of `comm` (MPI must be
 *  initialized). On failure *out is set to NULL. */
CAIRN_C_API int cairn_checkpointer_create(MPI_Comm comm, cairn_checkpointer** out);

/** cairn_checkpointer_create with a Fortran communicator handle (MPI_Fint, converted by
 *  MPI_Comm_f2c): `comm` of `use mpi`, or `comm%MPI_VAL` of `use mpi_f08`. Collective. */
CAIRN_C_API int cairn_checkpointer_create_f(MPI_Fint comm, cairn_checkpointer** out);

/** Collective when a save is in flight (waits for it). Frees `ck`; NULL is accepted and does
 *  nothing. Requests from cairn_async_save remain valid and must still be waited for. */
CAIRN_C_API int cairn_checkpointer_free(cairn_checkpointer* ck);

/** Not collective (set it alike on every rank): when `overwrite` is non-zero, later saves replace an
 *  existing checkpoint of the same id (atomically, once the new one is complete); by default saving
 *  onto an existing id fails with CAIRN_ERR_USAGE. */
CAIRN_C_API int cairn_checkpointer_set_overwrite(cairn_checkpointer* ck, int overwrite);

/** This rank in the checkpointer's communicator, in *rank. Not collective. */
CAIRN_C_API int cairn_checkpointer_rank(const cairn_checkpointer* ck, int* rank);

/* ---- state ---- */

/** Creates an empty state. Not collective. On failure *out is set to NULL. */
CAIRN_C_API int cairn_state_create(cairn_state** out);

/** Frees a state (not the memory its entries point to). NULL is accepted. Not collective. */
CAIRN_C_API int cairn_state_free(cairn_state* st);

/** Adds a sharded array of `ndim` (1 to 32) dimensions of which this rank holds one row-major
 *  chunk at `data`: `local_shape` elements at `offset` (0-based) in the `global_shape` array.
 *  A rank that holds nothing passes a local_shape with a zero extent (data may then be NULL) and
 *  adds no chunk. Chunks are checked (bounds, overlaps, agreement between ranks) when the state
 *  is saved or loaded. Names are '/'-separated paths ("fields/T"). Not collective.
 *  CAIRN_ERR_USAGE for NULL arguments, an unknown dtype, ndim out of range, negative extents or a
 *  name used twice. */
CAIRN_C_API int cairn_state_add_array(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                                      const int64_t* global_shape, const int64_t* offset, const int64_t* local_shape,
                                      void* data);

/** cairn_state_add_array for a column-major (Fortran order) chunk; shapes and offsets are in the
 *  logical dimension order (see "Array layouts and Fortran" above). Not collective. */
CAIRN_C_API int cairn_state_add_array_colmajor(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                                               const int64_t* global_shape, const int64_t* offset,
                                               const int64_t* local_shape, void* data);

/** Adds a sharded array with no chunk on this rank yet; add chunks with cairn_state_add_chunk.
 *  Not collective. */
CAIRN_C_API int cairn_state_declare_array(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                                          const int64_t* global_shape);

/** Adds one more chunk (`ndim` must be the array's) to the array `name` that this state already
 *  has (from cairn_state_declare_array or cairn_state_add_array[_colmajor]); a rank may hold
 *  several disjoint chunks. Not collective. CAIRN_ERR_USAGE when the state has no array `name`. */
CAIRN_C_API int cairn_state_add_chunk(cairn_state* st, const char* name, int ndim, const int64_t* offset,
                                      const int64_t* local_shape, void* data, cairn_layout layout);

/** Compresses the array `name` that this state already has on disk with `method` at `level`
 *  (0: the method's default). Every rank must set the same; levels are checked when the state is
 *  saved. Not collective. CAIRN_ERR_USAGE when the state has no array `name` or for an unknown
 *  method. */
CAIRN_C_API int cairn_state_set_compression(cairn_state* st, const char* name, cairn_compression method, int level);

/** Adds an array that every rank holds whole and identically at `data` (written once, loaded by
 *  every rank). Not collective. */
CAIRN_C_API int cairn_state_add_replicated_array(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                                                 const int64_t* shape, void* data, cairn_layout layout);

/** Adds a rank-local blob of `nbytes` bytes at `data`: every rank saves its own, and a load on the
 *  same number of ranks gives every rank its own back. The size must match on load. Not collective. */
CAIRN_C_API int cairn_state_add_bytes(cairn_state* st, const char* name, void* data, int64_t nbytes);

/** Adds a blob every rank holds identically (written once). Not collective. */
CAIRN_C_API int cairn_state_add_replicated_bytes(cairn_state* st, const char* name, void* data, int64_t nbytes);

/** Adds a replicated int64 scalar read from (save) and written to (load) *value. Not collective. */
CAIRN_C_API int cairn_state_add_int64(cairn_state* st, const char* name, int64_t* value);

/** Adds a replicated double scalar read from (save) and written to (load) *value. Not collective. */
CAIRN_C_API int cairn_state_add_double(cairn_state* st, const char* name, double* value);

/** The number of entries in the state, in *count. Not collective. */
CAIRN_C_API int cairn_state_size(const cairn_state* st, int64_t* count);

/* ---- saving and loading ---- */

/** Collective. Saves `st` as checkpoint `checkpoint_id` (a directory path) and returns once it is
 *  published and durable. On failure nothing is published and every rank returns the same code:
 *  CAIRN_ERR_USAGE (invalid entries, existing id without overwrite), CAIRN_ERR_STORAGE, ... */
CAIRN_C_API int cairn_save(cairn_checkpointer* ck, cairn_state* st, const char* checkpoint_id);

/** Collective. Starts saving `st` and returns once its bytes are staged: the caller may change its
 *  arrays and free `st` at once. *out receives a request to complete with cairn_wait (required,
 *  it frees the request). A failed save is reported by cairn_wait, not here; this returns an error
 *  (and *out = NULL) only for NULL arguments or a failure to start. */
CAIRN_C_API int cairn_async_save(cairn_checkpointer* ck, cairn_state* st, const char* checkpoint_id,
                                 cairn_request** out);

/** Waits for the save of `req` to finish, frees `req` (also on failure) and returns the save's
 *  status, the same on every rank. Collective when the checkpointer writes on the calling thread
 *  (MPI below MPI_THREAD_MULTIPLE); call it on every rank. CAIRN_ERR_USAGE for NULL. */
CAIRN_C_API int cairn_wait(cairn_request* req);

/** Sets *done to 1 when the save of `req` has finished, else 0, without blocking (in background
 *  mode). When done, returns the save's status (the request must still be freed by cairn_wait,
 *  which returns it again). Collective under the same condition as cairn_wait. */
CAIRN_C_API int cairn_test(cairn_request* req, int* done);

/** Collective. Fills every entry of `st` from checkpoint `checkpoint_id`, whatever the
 *  decomposition and rank count at save. CAIRN_ERR_USAGE for a missing entry or a dtype or shape
 *  mismatch, CAIRN_ERR_STORAGE for a missing checkpoint, CAIRN_ERR_CORRUPT for damaged data; the
 *  same code on every rank. */
CAIRN_C_API int cairn_load(cairn_checkpointer* ck, cairn_state* st, const char* checkpoint_id);

/* ---- checkpoint manager ---- */

/** Options of a manager; fill with cairn_manager_options_init, then change fields. */
typedef struct cairn_manager_options {
  int64_t every_steps;           /**< Save when step % every_steps == 0 (0: not by step). Default 0. */
  double every_seconds;          /**< Save when this many seconds passed since the last save (0: not by time). */
  int keep_last;                 /**< Keep the newest keep_last checkpoints (at least 1). Default 3. */
  int64_t keep_every;            /**< Also keep every checkpoint whose step is a multiple of this (0: none). */
  int deep_check;                /**< Non-zero: latest() verifies every checksum, not only the metadata. */
  int zero_copy;                 /**< Non-zero: async saves write from the caller's memory (no staging copy);
                                      the arrays must not change until the save completes. Default 0. */
  double mtbf_seconds;           /**< The job's mean time between failures (0: not used): saves also fall due
                                      at the Young/Daly interval of the measured save cost. Default 0. */
  double time_limit_seconds;     /**< Wall-clock limit from creation (0: CAIRN_JOB_END_TIME or
                                      SLURM_JOB_END_TIME, Unix seconds, if set). Default 0. */
  double exit_margin_seconds;    /**< cairn_manager_should_exit's margin beyond twice a save. Default 60. */
  const char* local_root;        /**< Node-local tier: a directory per node ("{node}" becomes the node index);
                                      saves go there first and are drained to `root`. NULL or "": none.
                                      Copied at creation. Default NULL. */
  int partner_copies;            /**< Non-zero: each rank's file is also kept on a partner node. Default 0. */
  double drain_bytes_per_second; /**< The drain's rate per rank (0: unthrottled). Default 0. */
  int incremental;               /**< Non-zero: saves write only the chunks that changed. Default 0. */
  int full_every;                /**< With incremental: every full_every-th save is full. Default 10. */
} cairn_manager_options;

/** Fills *options with the defaults (every_steps 0, every_seconds 0, keep_last 3, keep_every 0,
 *  deep_check 0, zero_copy 0, mtbf_seconds 0, time_limit_seconds 0, exit_margin_seconds 60,
 *  local_root NULL, partner_copies 0, drain_bytes_per_second 0, incremental 0, full_every 10).
 *  Not collective. */
CAIRN_C_API int cairn_manager_options_init(cairn_manager_options* options);

/** Collective over `comm`: a manager of checkpoints named "<root>/step_<step, 10 digits>", saving
 *  every `every_steps` steps and keeping the newest `keep_last`. On failure *out is NULL. */
CAIRN_C_API int cairn_manager_create(MPI_Comm comm, const char* root, int64_t every_steps, int keep_last,
                                     cairn_manager** out);

/** cairn_manager_create with every option. Collective over `comm`. */
CAIRN_C_API int cairn_manager_create_with_options(MPI_Comm comm, const char* root, const cairn_manager_options* options,
                                                  cairn_manager** out);

/** cairn_manager_create_with_options with a Fortran communicator handle. Collective. */
CAIRN_C_API int cairn_manager_create_f(MPI_Fint comm, const char* root, const cairn_manager_options* options,
                                       cairn_manager** out);

/** Collective: waits for the save in flight, then frees `mgr`. NULL is accepted. Returns the status
 *  of that last save, so that a failure of the final checkpoint is not lost. */
CAIRN_C_API int cairn_manager_free(cairn_manager* mgr);

/** Collective. When a save is due at `step`, waits for the previous save, starts saving `st` as the
 *  checkpoint of `step` and sets *saved to 1; else *saved = 0. The save runs asynchronously; its
 *  failure is returned by the next manager call that waits for it (the next due save,
 *  cairn_manager_wait or cairn_manager_free). `saved` may be NULL. */
CAIRN_C_API int cairn_manager_save_if_due(cairn_manager* mgr, cairn_state* st, int64_t step, int* saved);

/** Collective. Saves `st` as the checkpoint of `step` now and waits until it is published. */
CAIRN_C_API int cairn_manager_save(cairn_manager* mgr, cairn_state* st, int64_t step);

/** Collective. Waits for the save in flight and returns its status (0 when there is none). */
CAIRN_C_API int cairn_manager_wait(cairn_manager* mgr);

/** Collective. The step of the newest checkpoint that passes the manager's check, in *step, and
 *  *found = 1; *found = 0 (and *step = 0) when there is none. */
CAIRN_C_API int cairn_manager_latest(cairn_manager* mgr, int64_t* step, int* found);

/** Collective. Loads the newest checkpoint that loads into `st` (skipping damaged ones) and sets
 *  *step to its step and *restored = 1; when there is none, *step = 0 and *restored = 0 (start
 *  fresh). A state that does not match the checkpoint gives CAIRN_ERR_USAGE. */
CAIRN_C_API int cairn_manager_restore_or_start(cairn_manager* mgr, cairn_state* st, int64_t* step, int* restored);

/** Collective. Sets *exit_now to 1 when the job should stop now to end before its wall-clock
 *  limit; it then has saved `st` as the checkpoint of `step` (unless already saved) and waited for
 *  it. *exit_now = 0 otherwise, and when no limit is known. */
CAIRN_C_API int cairn_manager_should_exit(cairn_manager* mgr, cairn_state* st, int64_t step, int* exit_now);

/** Collective. The interval in seconds that mtbf_seconds schedules saves at (0 before any save
 *  was measured, or without mtbf_seconds), in *seconds. */
CAIRN_C_API int cairn_manager_checkpoint_interval(cairn_manager* mgr, double* seconds);

/** Collective. Seconds left before the job's wall-clock limit in *seconds and *known = 1;
 *  *known = 0 when no limit is known. */
CAIRN_C_API int cairn_manager_time_left(cairn_manager* mgr, double* seconds, int* known);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_CAIRN_H */
