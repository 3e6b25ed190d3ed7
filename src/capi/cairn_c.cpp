// The C API (include/cairn/cairn.h): opaque handles over the C++ classes, a status code from every
// call, every exception caught here and its message kept per thread for cairn_last_error().
#include <cairn/cairn.h>
#include <cairn/checkpointer.hpp>
#include <cairn/error.hpp>
#include <cairn/future.hpp>
#include <cairn/manager.hpp>
#include <cairn/state.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <variant>

struct cairn_checkpointer {
  explicit cairn_checkpointer(MPI_Comm comm) : checkpointer(comm) {}
  cairn::Checkpointer checkpointer;
  cairn::SaveOptions save_options;
};

struct cairn_state {
  cairn::State state;
};

struct cairn_request {
  cairn::SaveFuture future;
  std::string id;
  int rank = 0;
};

struct cairn_manager {
  std::unique_ptr<cairn::CheckpointManager> manager;
  // The save in flight, kept so that its failure is returned by the call that waits for it.
  cairn::SaveFuture pending;
  std::int64_t pending_step = 0;
  int rank = 0;
};

namespace {

constexpr int kMaxDims = 32;

thread_local std::string t_last_error;

// This process's rank in MPI_COMM_WORLD for messages, or 0 outside MPI.
int world_rank() noexcept {
  int initialized = 0;
  int finalized = 0;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) return 0;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return 0;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// Rank for Where when a call has no communicator of its own: this process's rank in MPI_COMM_WORLD,
// asked only when an error is reported.
constexpr int kWorldRank = -1;

// What a call is and where it runs: the prefix of its error messages.
struct Where {
  const char* function;
  int rank;
  std::string label() const {
    return std::string(function) + " (rank " + std::to_string(rank == kWorldRank ? world_rank() : rank) + ")";
  }
};

// Runs `body` and turns every exception into a status code and a message for cairn_last_error().
template <class Body>
int guarded(const Where& where, Body&& body) noexcept {
  try {
    std::forward<Body>(body)();
    t_last_error.clear();
    return CAIRN_SUCCESS;
  } catch (const cairn::Error& e) {
    try {
      t_last_error = where.label() + ": " + e.what();
    } catch (...) {
      t_last_error.clear();
    }
    return static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    try {
      t_last_error = where.label() + ": out of memory";
    } catch (...) {
      t_last_error.clear();
    }
    return CAIRN_ERR_INTERNAL;
  } catch (const std::exception& e) {
    try {
      t_last_error = where.label() + ": unexpected error: " + e.what();
    } catch (...) {
      t_last_error.clear();
    }
    return CAIRN_ERR_INTERNAL;
  } catch (...) {
    try {
      t_last_error = where.label() + ": unexpected error of unknown type";
    } catch (...) {
      t_last_error.clear();
    }
    return CAIRN_ERR_INTERNAL;
  }
}

[[noreturn]] void usage(const std::string& why) {
  throw cairn::UsageError(why);
}

template <class T>
void require(const T* pointer, const char* argument) {
  if (pointer == nullptr) usage(std::string("argument '") + argument + "' is NULL");
}

std::string entry_label(const char* name) {
  return std::string("entry '") + name + "'";
}

cairn::DType checked_dtype(const char* name, int dtype) {
  if (dtype < 0 || dtype > 255 || !cairn::dtype_is_valid(static_cast<cairn::DType>(dtype)))
    usage(entry_label(name) + ": dtype " + std::to_string(dtype) + " is not a cairn_dtype (CAIRN_INT8 = 0 to " +
          "CAIRN_BFLOAT16 = 12)");
  return static_cast<cairn::DType>(dtype);
}

// The integer a C caller passed for an enum. C allows any int there; reading it through the C++
// enum type would be undefined for values outside the enumerators' range, so the bytes are copied.
template <class Enum>
int enum_value(const Enum& value) noexcept {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized here");
  int raw = 0;
  std::memcpy(&raw, &value, sizeof raw);
  return raw;
}

cairn::Layout checked_layout(const char* name, int layout) {
  if (layout != CAIRN_ROW_MAJOR && layout != CAIRN_COLUMN_MAJOR)
    usage(entry_label(name) + ": layout " + std::to_string(layout) +
          " is neither CAIRN_ROW_MAJOR (0) nor CAIRN_COLUMN_MAJOR (1)");
  return static_cast<cairn::Layout>(layout);
}

void check_ndim(const char* name, int ndim) {
  if (ndim < 1 || ndim > kMaxDims)
    usage(entry_label(name) + ": ndim is " + std::to_string(ndim) + "; an array has 1 to " + std::to_string(kMaxDims) +
          " dimensions");
}

// Copies `ndim` extents from C, refusing negative ones; `what` names the argument.
cairn::Extents extents(const char* name, const char* what, int ndim, const std::int64_t* values) {
  if (values == nullptr) usage(entry_label(name) + ": argument '" + what + "' is NULL");
  cairn::Extents out(values, values + ndim);
  for (int d = 0; d < ndim; ++d)
    if (out[d] < 0)
      usage(entry_label(name) + ": " + what + "[" + std::to_string(d) + "] is negative (" + std::to_string(out[d]) +
            ")");
  return out;
}

void check_new_name(const cairn_state* st, const char* name) {
  require(name, "name");
  if (st->state.find(name) != nullptr) usage(entry_label(name) + ": the state already has an entry of this name");
}

bool has_zero_extent(const cairn::Extents& shape) {
  for (const std::int64_t e : shape)
    if (e == 0) return true;
  return false;
}

// Adds `data` as a chunk of `array`, unless the chunk is empty (a rank that holds nothing).
void add_chunk_to(cairn::ArrayEntry& array, const char* name, int ndim, const std::int64_t* offset,
                  const std::int64_t* local_shape, void* data, cairn::Layout layout) {
  cairn::Extents off = extents(name, "offset", ndim, offset);
  cairn::Extents shape = extents(name, "local_shape", ndim, local_shape);
  if (has_zero_extent(shape)) return;
  if (data == nullptr) usage(entry_label(name) + ": argument 'data' is NULL for a chunk that is not empty");
  array.add_chunk(std::move(off), std::move(shape), data, layout);
}

int add_array(const char* function, cairn_state* st, const char* name, int dtype, int ndim,
              const std::int64_t* global_shape, const std::int64_t* offset, const std::int64_t* local_shape, void* data,
              cairn::Layout layout) {
  return guarded({function, kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    const cairn::DType type = checked_dtype(name, dtype);
    check_ndim(name, ndim);
    cairn::Extents global = extents(name, "global_shape", ndim, global_shape);
    // Check the chunk before adding the entry, so that a failed call leaves the state unchanged.
    cairn::ArrayEntry scratch;
    add_chunk_to(scratch, name, ndim, offset, local_shape, data, layout);
    cairn::ArrayEntry& array = st->state.add_array(name, type, std::move(global));
    array.chunks = std::move(scratch.chunks);
  });
}

std::size_t checked_size(const char* name, std::int64_t nbytes) {
  if (nbytes < 0) usage(entry_label(name) + ": nbytes is negative (" + std::to_string(nbytes) + ")");
  return static_cast<std::size_t>(nbytes);
}

int checkpointer_rank(const cairn_checkpointer* ck) noexcept {
  return ck != nullptr ? const_cast<cairn_checkpointer*>(ck)->checkpointer.process_group().rank() : kWorldRank;
}

int create_checkpointer(const char* function, MPI_Comm comm, cairn_checkpointer** out) {
  if (out != nullptr) *out = nullptr;
  return guarded({function, kWorldRank}, [&] {
    require(out, "out");
    if (comm == MPI_COMM_NULL) usage("argument 'comm' is MPI_COMM_NULL");
    *out = new cairn_checkpointer(comm);
  });
}

int create_manager(const char* function, MPI_Comm comm, const char* root, const cairn_manager_options* options,
                   cairn_manager** out) {
  if (out != nullptr) *out = nullptr;
  return guarded({function, kWorldRank}, [&] {
    require(out, "out");
    require(root, "root");
    require(options, "options");
    if (comm == MPI_COMM_NULL) usage("argument 'comm' is MPI_COMM_NULL");
    if (options->every_steps < 0) usage("every_steps is negative (" + std::to_string(options->every_steps) + ")");
    if (!(options->every_seconds >= 0)) usage("every_seconds is negative or not a number");
    if (options->keep_last < 1) usage("keep_last must be at least 1, not " + std::to_string(options->keep_last));
    if (options->keep_every < 0) usage("keep_every is negative (" + std::to_string(options->keep_every) + ")");
    cairn::ManagerOptions opts;
    opts.every_steps = options->every_steps;
    opts.every_seconds = options->every_seconds;
    opts.keep_last = options->keep_last;
    opts.keep_every = options->keep_every;
    opts.check = options->deep_check != 0 ? cairn::CheckMode::Deep : cairn::CheckMode::Fast;
    opts.save.staging = options->zero_copy != 0 ? cairn::StagingMode::ZeroCopy : cairn::StagingMode::Copy;
    opts.mtbf_seconds = options->mtbf_seconds;
    opts.time_limit_seconds = options->time_limit_seconds;
    opts.exit_margin_seconds = options->exit_margin_seconds;
    if (options->local_root != nullptr) opts.local_root = options->local_root;
    opts.partner_copies = options->partner_copies != 0;
    opts.drain_bytes_per_second = options->drain_bytes_per_second;
    opts.incremental = options->incremental != 0;
    opts.full_every = options->full_every;
    auto handle = std::make_unique<cairn_manager>();
    handle->manager = std::make_unique<cairn::CheckpointManager>(comm, root, std::move(opts));
    handle->rank = handle->manager->checkpointer().process_group().rank();
    *out = handle.release();
  });
}

// Waits for the manager's save in flight and throws its error, naming its step.
void finish_pending(cairn_manager* mgr) {
  if (!mgr->pending.valid()) return;
  cairn::SaveFuture pending = std::move(mgr->pending);
  mgr->pending = cairn::SaveFuture();
  try {
    pending.get();
  } catch (const cairn::Error& e) {
    cairn::throw_error(e.code(), "the save of step " + std::to_string(mgr->pending_step) + " failed: " + e.what());
  }
}

}  // namespace

extern "C" {

const char* cairn_version(void) {
  return cairn::version();
}

const char* cairn_last_error(void) {
  return t_last_error.c_str();
}

// ---- checkpointer ----

int cairn_checkpointer_create(MPI_Comm comm, cairn_checkpointer** out) {
  return create_checkpointer("cairn_checkpointer_create", comm, out);
}

int cairn_checkpointer_create_f(MPI_Fint comm, cairn_checkpointer** out) {
  return create_checkpointer("cairn_checkpointer_create_f", MPI_Comm_f2c(comm), out);
}

int cairn_checkpointer_free(cairn_checkpointer* ck) {
  return guarded({"cairn_checkpointer_free", checkpointer_rank(ck)}, [&] { delete ck; });
}

int cairn_checkpointer_set_overwrite(cairn_checkpointer* ck, int overwrite) {
  return guarded({"cairn_checkpointer_set_overwrite", checkpointer_rank(ck)}, [&] {
    require(ck, "ck");
    ck->save_options.overwrite = overwrite != 0;
  });
}

int cairn_checkpointer_rank(const cairn_checkpointer* ck, int* rank) {
  return guarded({"cairn_checkpointer_rank", checkpointer_rank(ck)}, [&] {
    require(ck, "ck");
    require(rank, "rank");
    *rank = checkpointer_rank(ck);
  });
}

// ---- state ----

int cairn_state_create(cairn_state** out) {
  if (out != nullptr) *out = nullptr;
  return guarded({"cairn_state_create", kWorldRank}, [&] {
    require(out, "out");
    *out = new cairn_state();
  });
}

int cairn_state_free(cairn_state* st) {
  delete st;
  t_last_error.clear();
  return CAIRN_SUCCESS;
}

int cairn_state_add_array(cairn_state* st, const char* name, cairn_dtype dtype, int ndim, const int64_t* global_shape,
                          const int64_t* offset, const int64_t* local_shape, void* data) {
  return add_array("cairn_state_add_array", st, name, enum_value(dtype), ndim, global_shape, offset, local_shape, data,
                   cairn::Layout::RowMajor);
}

int cairn_state_add_array_colmajor(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                                   const int64_t* global_shape, const int64_t* offset, const int64_t* local_shape,
                                   void* data) {
  return add_array("cairn_state_add_array_colmajor", st, name, enum_value(dtype), ndim, global_shape, offset,
                   local_shape, data, cairn::Layout::ColumnMajor);
}

int cairn_state_set_compression(cairn_state* st, const char* name, cairn_compression method, int level) {
  return guarded({"cairn_state_set_compression", kWorldRank}, [&] {
    require(st, "st");
    require(name, "name");
    cairn::Entry* entry = st->state.find(name);
    if (entry == nullptr || !entry->is_array()) usage(entry_label(name) + ": the state has no array of this name");
    const int value = enum_value(method);
    if (value < CAIRN_COMPRESSION_NONE || value > CAIRN_COMPRESSION_ZSTD)
      usage(entry_label(name) + ": unknown compression method " + std::to_string(value));
    std::get<cairn::ArrayEntry>(entry->value).compress(static_cast<cairn::Compression>(value), level);
  });
}

int cairn_state_declare_array(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                              const int64_t* global_shape) {
  return guarded({"cairn_state_declare_array", kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    const cairn::DType type = checked_dtype(name, enum_value(dtype));
    check_ndim(name, ndim);
    st->state.add_array(name, type, extents(name, "global_shape", ndim, global_shape));
  });
}

int cairn_state_add_chunk(cairn_state* st, const char* name, int ndim, const int64_t* offset,
                          const int64_t* local_shape, void* data, cairn_layout layout) {
  return guarded({"cairn_state_add_chunk", kWorldRank}, [&] {
    require(st, "st");
    require(name, "name");
    cairn::Entry* entry = st->state.find(name);
    if (entry == nullptr || !entry->is_array()) usage(entry_label(name) + ": the state has no array of this name");
    auto& array = std::get<cairn::ArrayEntry>(entry->value);
    if (entry->distribution != cairn::Distribution::Sharded)
      usage(entry_label(name) + ": chunks can only be added to a sharded array");
    if (ndim != static_cast<int>(array.global_shape.size()))
      usage(entry_label(name) + ": ndim is " + std::to_string(ndim) + " but the array has " +
            std::to_string(array.global_shape.size()) + " dimensions");
    add_chunk_to(array, name, ndim, offset, local_shape, data, checked_layout(name, enum_value(layout)));
  });
}

int cairn_state_add_replicated_array(cairn_state* st, const char* name, cairn_dtype dtype, int ndim,
                                     const int64_t* shape, void* data, cairn_layout layout) {
  return guarded({"cairn_state_add_replicated_array", kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    const cairn::DType type = checked_dtype(name, enum_value(dtype));
    check_ndim(name, ndim);
    const cairn::Layout order = checked_layout(name, enum_value(layout));
    cairn::Extents global = extents(name, "shape", ndim, shape);
    if (data == nullptr) usage(entry_label(name) + ": argument 'data' is NULL");
    cairn::ArrayEntry& array = st->state.add_array(name, type, global, cairn::Distribution::Replicated);
    array.add_chunk(cairn::Extents(global.size(), 0), global, data, order);
  });
}

int cairn_state_add_bytes(cairn_state* st, const char* name, void* data, int64_t nbytes) {
  return guarded({"cairn_state_add_bytes", kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    const std::size_t size = checked_size(name, nbytes);
    if (data == nullptr) usage(entry_label(name) + ": argument 'data' is NULL");
    st->state.add_bytes(name, data, size, cairn::Distribution::RankLocal);
  });
}

int cairn_state_add_replicated_bytes(cairn_state* st, const char* name, void* data, int64_t nbytes) {
  return guarded({"cairn_state_add_replicated_bytes", kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    const std::size_t size = checked_size(name, nbytes);
    if (data == nullptr) usage(entry_label(name) + ": argument 'data' is NULL");
    st->state.add_bytes(name, data, size, cairn::Distribution::Replicated);
  });
}

int cairn_state_add_int64(cairn_state* st, const char* name, int64_t* value) {
  return guarded({"cairn_state_add_int64", kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    if (value == nullptr) usage(entry_label(name) + ": argument 'value' is NULL");
    st->state.add_scalar(name, *value);
  });
}

int cairn_state_add_double(cairn_state* st, const char* name, double* value) {
  return guarded({"cairn_state_add_double", kWorldRank}, [&] {
    require(st, "st");
    check_new_name(st, name);
    if (value == nullptr) usage(entry_label(name) + ": argument 'value' is NULL");
    st->state.add_scalar(name, *value);
  });
}

int cairn_state_size(const cairn_state* st, int64_t* count) {
  return guarded({"cairn_state_size", kWorldRank}, [&] {
    require(st, "st");
    require(count, "count");
    *count = static_cast<int64_t>(st->state.size());
  });
}

// ---- saving and loading ----

int cairn_save(cairn_checkpointer* ck, cairn_state* st, const char* checkpoint_id) {
  return guarded({"cairn_save", checkpointer_rank(ck)}, [&] {
    require(ck, "ck");
    require(st, "st");
    require(checkpoint_id, "checkpoint_id");
    ck->checkpointer.save(st->state, checkpoint_id, ck->save_options);
  });
}

int cairn_async_save(cairn_checkpointer* ck, cairn_state* st, const char* checkpoint_id, cairn_request** out) {
  if (out != nullptr) *out = nullptr;
  return guarded({"cairn_async_save", checkpointer_rank(ck)}, [&] {
    require(ck, "ck");
    require(st, "st");
    require(checkpoint_id, "checkpoint_id");
    require(out, "out");
    auto request = std::make_unique<cairn_request>();
    request->id = checkpoint_id;
    request->rank = checkpointer_rank(ck);
    request->future = ck->checkpointer.async_save(st->state, checkpoint_id, ck->save_options);
    *out = request.release();
  });
}

int cairn_wait(cairn_request* req) {
  const std::unique_ptr<cairn_request> owned(req);
  return guarded({"cairn_wait", req != nullptr ? req->rank : kWorldRank}, [&] {
    require(req, "req");
    try {
      owned->future.get();
    } catch (const cairn::Error& e) {
      cairn::throw_error(e.code(), "checkpoint '" + owned->id + "': " + e.what());
    }
  });
}

int cairn_test(cairn_request* req, int* done) {
  if (done != nullptr) *done = 0;
  return guarded({"cairn_test", req != nullptr ? req->rank : kWorldRank}, [&] {
    require(req, "req");
    require(done, "done");
    if (!req->future.test()) return;
    *done = 1;
    try {
      req->future.get();
    } catch (const cairn::Error& e) {
      cairn::throw_error(e.code(), "checkpoint '" + req->id + "': " + e.what());
    }
  });
}

int cairn_load(cairn_checkpointer* ck, cairn_state* st, const char* checkpoint_id) {
  return guarded({"cairn_load", checkpointer_rank(ck)}, [&] {
    require(ck, "ck");
    require(st, "st");
    require(checkpoint_id, "checkpoint_id");
    ck->checkpointer.load(st->state, checkpoint_id);
  });
}

// ---- checkpoint manager ----

int cairn_manager_options_init(cairn_manager_options* options) {
  return guarded({"cairn_manager_options_init", kWorldRank}, [&] {
    require(options, "options");
    const cairn::ManagerOptions defaults;
    options->every_steps = defaults.every_steps;
    options->every_seconds = defaults.every_seconds;
    options->keep_last = defaults.keep_last;
    options->keep_every = defaults.keep_every;
    options->deep_check = defaults.check == cairn::CheckMode::Deep ? 1 : 0;
    options->zero_copy = defaults.save.staging == cairn::StagingMode::ZeroCopy ? 1 : 0;
    options->mtbf_seconds = defaults.mtbf_seconds;
    options->time_limit_seconds = defaults.time_limit_seconds;
    options->exit_margin_seconds = defaults.exit_margin_seconds;
    options->local_root = nullptr;
    options->partner_copies = defaults.partner_copies ? 1 : 0;
    options->drain_bytes_per_second = defaults.drain_bytes_per_second;
    options->incremental = defaults.incremental ? 1 : 0;
    options->full_every = defaults.full_every;
  });
}

int cairn_manager_create(MPI_Comm comm, const char* root, int64_t every_steps, int keep_last, cairn_manager** out) {
  cairn_manager_options options;
  cairn_manager_options_init(&options);
  options.every_steps = every_steps;
  options.keep_last = keep_last;
  return create_manager("cairn_manager_create", comm, root, &options, out);
}

int cairn_manager_create_with_options(MPI_Comm comm, const char* root, const cairn_manager_options* options,
                                      cairn_manager** out) {
  return create_manager("cairn_manager_create_with_options", comm, root, options, out);
}

int cairn_manager_create_f(MPI_Fint comm, const char* root, const cairn_manager_options* options, cairn_manager** out) {
  return create_manager("cairn_manager_create_f", MPI_Comm_f2c(comm), root, options, out);
}

int cairn_manager_free(cairn_manager* mgr) {
  const std::unique_ptr<cairn_manager> owned(mgr);
  return guarded({"cairn_manager_free", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    if (owned) finish_pending(owned.get());
  });
}

int cairn_manager_save_if_due(cairn_manager* mgr, cairn_state* st, int64_t step, int* saved) {
  if (saved != nullptr) *saved = 0;
  return guarded({"cairn_manager_save_if_due", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(st, "st");
    if (!mgr->manager->due(step)) return;
    // The new save would wait for the previous one anyway; waiting here keeps its error.
    std::optional<cairn::Error> previous;
    try {
      finish_pending(mgr);
    } catch (const cairn::Error& e) {
      previous = e;
    }
    mgr->pending = mgr->manager->async_save(st->state, step);
    mgr->pending_step = step;
    if (saved != nullptr) *saved = 1;
    if (previous) throw *previous;
  });
}

int cairn_manager_save(cairn_manager* mgr, cairn_state* st, int64_t step) {
  return guarded({"cairn_manager_save", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(st, "st");
    finish_pending(mgr);
    mgr->pending = mgr->manager->async_save(st->state, step);
    mgr->pending_step = step;
    finish_pending(mgr);
  });
}

int cairn_manager_wait(cairn_manager* mgr) {
  return guarded({"cairn_manager_wait", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    finish_pending(mgr);
    mgr->manager->wait();
  });
}

int cairn_manager_latest(cairn_manager* mgr, int64_t* step, int* found) {
  if (step != nullptr) *step = 0;
  if (found != nullptr) *found = 0;
  return guarded({"cairn_manager_latest", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(step, "step");
    require(found, "found");
    const std::optional<cairn::CheckpointInfo> latest = mgr->manager->latest();
    if (!latest) return;
    *step = latest->step;
    *found = 1;
  });
}

int cairn_manager_restore_or_start(cairn_manager* mgr, cairn_state* st, int64_t* step, int* restored) {
  if (step != nullptr) *step = 0;
  if (restored != nullptr) *restored = 0;
  return guarded({"cairn_manager_restore_or_start", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(st, "st");
    require(step, "step");
    require(restored, "restored");
    const std::optional<std::int64_t> from = mgr->manager->restore_or_start(st->state);
    if (!from) return;
    *step = *from;
    *restored = 1;
  });
}

int cairn_manager_should_exit(cairn_manager* mgr, cairn_state* st, int64_t step, int* exit_now) {
  if (exit_now != nullptr) *exit_now = 0;
  return guarded({"cairn_manager_should_exit", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(st, "st");
    require(exit_now, "exit_now");
    finish_pending(mgr);  // a failed earlier save is reported here, not lost
    *exit_now = mgr->manager->should_exit(st->state, step) ? 1 : 0;
  });
}

int cairn_manager_checkpoint_interval(cairn_manager* mgr, double* seconds) {
  if (seconds != nullptr) *seconds = 0;
  return guarded({"cairn_manager_checkpoint_interval", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(seconds, "seconds");
    *seconds = mgr->manager->checkpoint_interval();
  });
}

int cairn_manager_time_left(cairn_manager* mgr, double* seconds, int* known) {
  if (seconds != nullptr) *seconds = 0;
  if (known != nullptr) *known = 0;
  return guarded({"cairn_manager_time_left", mgr != nullptr ? mgr->rank : kWorldRank}, [&] {
    require(mgr, "mgr");
    require(seconds, "seconds");
    require(known, "known");
    const std::optional<double> left = mgr->manager->time_left();
    if (!left) return;
    *seconds = *left;
    *known = 1;
  });
}

}  // extern "C"
