#include <cairn/error.hpp>
#include <cairn/manager.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/byte_codec.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "exec/checkpointer_access.hpp"
#include "manage/checkpoint_interval.hpp"
#include "manage/directory_listing.hpp"
#include "manage/node_local_tier.hpp"
#include "manage/referenced_checkpoints.hpp"
#include "storage/common/publish.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace cairn {

namespace {

using detail::directory_names;
using detail::ends_with;
using detail::exists;
using detail::step_of;

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct Published {
  std::int64_t step;
  std::string name;
};

// Published checkpoints under `root` (a directory with its marker), oldest first. Rank 0 only.
std::vector<Published> scan_published(const std::string& root, const std::string& prefix) {
  std::vector<Published> found;
  for (const std::string& name : directory_names(root)) {
    const std::int64_t step = step_of(name, prefix);
    if (step < 0) continue;
    const std::string path = root + "/" + name;
    if (!is_directory(path) || !exists(path + "/" + detail::marker_file_name)) continue;
    found.push_back(Published{step, name});
  }
  std::sort(found.begin(), found.end(), [](const Published& a, const Published& b) {
    return a.step != b.step ? a.step < b.step : a.name < b.name;
  });
  return found;
}

// Removes what interrupted saves and removals left under `root`, except `keep_partial` (the
// directory of the save about to start). A checkpoint moved aside while being replaced whose
// replacement never arrived is moved back. Rank 0 only.
void remove_leftovers(const std::string& root, const std::string& prefix, const std::string& keep_partial) {
  const std::string hidden = "." + prefix;
  for (const std::string& name : directory_names(root)) {
    if (name.compare(0, hidden.size(), hidden) != 0 || name == keep_partial) continue;
    const std::string path = root + "/" + name;
    if (ends_with(name, ".old")) {
      const std::string final_name = name.substr(1, name.size() - 1 - 4);
      if (step_of(final_name, prefix) >= 0 && !exists(root + "/" + final_name) &&
          ::rename(path.c_str(), (root + "/" + final_name).c_str()) == 0) {
        detail::log(detail::LogLevel::Warn, "restored checkpoint '" + root + "/" + final_name +
                                                "', moved aside by a replacement that never completed");
        continue;
      }
    } else if (!ends_with(name, ".partial") && !ends_with(name, ".removing")) {
      continue;
    }
    detail::remove_tree(path);
    detail::log(detail::LogLevel::Info, "removed '" + path + "', left by an interrupted save or removal");
  }
}

}  // namespace

struct CheckpointManager::Impl {
  std::unique_ptr<Checkpointer> owned;
  Checkpointer* checkpointer = nullptr;
  std::string root;
  ManagerOptions options;
  // The manager's own collectives (schedule, step checks, listings) run while the worker may be
  // running a save's collectives: over a communicator of their own where there is one.
  std::unique_ptr<ProcessGroup> own_group;
  SaveFuture in_flight;
  std::chrono::steady_clock::time_point last_save_start = std::chrono::steady_clock::now();
  // When to checkpoint (mtbf_seconds, should_exit): rank 0's measurements decide for all.
  detail::SaveCostRecord costs;
  bool in_flight_measured = false;
  bool saved_in_this_job = false;
  std::int64_t last_saved_step = -1;  // saved or restored; should_exit does not save it again
  bool exiting = false;
  // ManagerOptions::incremental: saves since the last full one (-1: none yet); what each
  // checkpoint refers to, for retention on rank 0 (shared with the hooks, which run on the worker).
  std::int64_t saves_since_full = -1;
  std::shared_ptr<detail::ReferenceCache> references = std::make_shared<detail::ReferenceCache>();
  std::optional<double> job_end;  // Unix seconds; rank 0's
  // The node-local tier (ManagerOptions::local_root), or none.
  std::unique_ptr<detail::NodeLocalTier> tier;

  Impl(std::unique_ptr<Checkpointer> own, Checkpointer* use, std::string root_dir, ManagerOptions opts)
      : owned(std::move(own)), checkpointer(use), root(std::move(root_dir)), options(std::move(opts)) {
    checkpointer->wait();  // the duplication below is collective on the checkpointer's communicator
    if (checkpointer->process_group().mpi_comm() != MPI_COMM_NULL)
      own_group = std::make_unique<MpiProcessGroup>(checkpointer->process_group().mpi_comm());
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (root.empty()) throw UsageError("CheckpointManager: the root directory is empty");
    if (options.prefix.empty() || options.prefix.find('/') != std::string::npos || options.prefix[0] == '.')
      throw UsageError("CheckpointManager: the prefix '" + options.prefix +
                       "' must be non-empty, without '/', and not start with '.'");
    if (options.full_every < 1)
      throw UsageError("CheckpointManager: full_every is " + std::to_string(options.full_every) +
                       "; at least 1 (every save full)");
    if (options.keep_last < 1)
      throw UsageError("CheckpointManager: keep_last is " + std::to_string(options.keep_last) +
                       "; at least the newest checkpoint must be kept");
    if (options.every_steps < 0 || options.keep_every < 0)
      throw UsageError("CheckpointManager: every_steps and keep_every must not be negative");
    if (!(options.every_seconds >= 0) || !std::isfinite(options.every_seconds))
      throw UsageError("CheckpointManager: every_seconds must be a finite number of seconds, not negative");
    for (const auto& [name, value] : {std::pair<const char*, double>{"mtbf_seconds", options.mtbf_seconds},
                                      {"time_limit_seconds", options.time_limit_seconds},
                                      {"exit_margin_seconds", options.exit_margin_seconds}})
      if (!(value >= 0) || !std::isfinite(value))
        throw UsageError(std::string("CheckpointManager: ") + name + " is " + std::to_string(value) +
                         "; it must be a finite number of seconds, not negative");
    options.save.overwrite = true;
    // Rank 0 reads the job's end, so that every rank goes by the same clock and the same error.
    double end = -1;
    detail::agree_on(group(), "reading the job's end time", [&] {
      if (group().rank() != 0) return;
      if (options.time_limit_seconds > 0)
        end = detail::unix_now() + options.time_limit_seconds;
      else if (const std::optional<double> from_environment = detail::job_end_from_environment())
        end = *from_environment;
    });
    group().broadcast(&end, sizeof end, 0);
    if (end > 0) job_end = end;
    if (!options.local_root.empty()) tier = std::make_unique<detail::NodeLocalTier>(*checkpointer, root, options);
  }

  // Records the cost of the save in flight once it has finished well (on every rank; rank 0's
  // record is the one used).
  void measure_finished_save() {
    if (!in_flight.valid() || in_flight_measured || !in_flight.test()) return;
    in_flight_measured = true;
    try {
      in_flight.get();
    } catch (const Error&) {
      return;  // a failed save says nothing about what a save costs; its error stays in its future
    }
    costs.add(in_flight.timings());
  }

  // Rank 0's interval for mtbf_seconds; 0 before any save was measured.
  double interval_seconds() const {
    if (options.mtbf_seconds <= 0 || costs.empty()) return 0;
    return std::max(optimal_checkpoint_interval(costs.stall_seconds(), options.mtbf_seconds), costs.whole_seconds());
  }

  double checkpoint_interval() {
    measure_finished_save();
    double interval = group().rank() == 0 ? interval_seconds() : 0;
    group().broadcast(&interval, sizeof interval, 0);
    return interval;
  }

  std::optional<double> time_left() {
    double left = 0;
    std::int64_t known = 0;
    if (group().rank() == 0 && job_end) {
      left = *job_end - detail::unix_now();
      known = 1;
    }
    group().broadcast(&known, sizeof known, 0);
    group().broadcast(&left, sizeof left, 0);
    if (!known) return std::nullopt;
    return left;
  }

  bool should_exit(const State& state, std::int64_t step) {
    if (exiting) return true;
    measure_finished_save();
    std::int64_t stop = 0;
    double left = 0, needed = 0;
    if (group().rank() == 0 && job_end) {
      left = *job_end - detail::unix_now();
      needed = 2 * costs.whole_seconds() + options.exit_margin_seconds;
      stop = left < needed ? 1 : 0;
    }
    group().broadcast(&stop, sizeof stop, 0);
    if (!stop) return false;
    if (group().rank() == 0)
      detail::log(detail::LogLevel::Info, "CheckpointManager: " + std::to_string(left) +
                                              " s left before the job's limit, less than the " +
                                              std::to_string(needed) + " s a final save needs: saving step " +
                                              std::to_string(step) + " and exiting");
    if (last_saved_step != step) async_save(state, step);
    if (in_flight.valid()) in_flight.get();  // published, or its error thrown (and asked again next call)
    exiting = true;
    return true;
  }

  // The group for the manager's collectives. A transport without an MPI communicator is shared
  // with the worker, so a save in flight is waited for first.
  ProcessGroup& group() {
    if (own_group) return *own_group;
    if (checkpointer->process_group().size() > 1) checkpointer->wait();
    return checkpointer->process_group();
  }

  std::string id_of(std::int64_t step) const {
    char digits[32];
    std::snprintf(digits, sizeof digits, "%010lld", static_cast<long long>(step));
    return root + "/" + options.prefix + digits;
  }

  void wait() {
    if (tier) tier->wait();
    checkpointer->wait();
    measure_finished_save();
    in_flight = SaveFuture();
  }

  // Rank 0 runs `body`, which fills `bytes`; every rank gets the bytes, or the same error.
  template <class Body>
  std::vector<std::byte> on_rank0(const std::string& what, Body&& body) {
    std::vector<std::byte> bytes;
    detail::agree_on(group(), what, [&] {
      if (group().rank() == 0) bytes = body();
    });
    detail::broadcast_bytes(group(), bytes, 0);
    return bytes;
  }

  std::vector<CheckpointInfo> list() {
    wait();
    const std::vector<std::byte> bytes = on_rank0("listing checkpoints in '" + root + "'", [&] {
      detail::ByteWriter out;
      const std::vector<Published> found = scan_published(root, options.prefix);
      out.u64(found.size());
      for (const Published& p : found) {
        out.i64(p.step);
        out.str(p.name);
      }
      return std::move(out.bytes());
    });
    detail::ByteReader in(bytes.data(), bytes.size(), "the list of checkpoints");
    std::vector<CheckpointInfo> result(in.count(9));
    for (CheckpointInfo& info : result) {
      info.step = in.i64();
      info.id = root + "/" + in.str();
    }
    return result;
  }

  // Collective. Why `id` fails the fast check, or "" when it passes: rank 0 opens it alone.
  std::string fast_check(const std::string& id) {
    const std::vector<std::byte> bytes = on_rank0("checking checkpoint '" + id + "'", [&] {
      std::string why;
      detail::CheckpointerAccess::run_on_worker(*checkpointer, [&] {
        SerialProcessGroup alone;
        std::unique_ptr<StorageReader> reader = make_reader();
        try {
          reader->open(id, alone);
        } catch (const Error& e) {
          why = e.what();
        }
        reader->close();
      });
      detail::ByteWriter out;
      out.str(why);
      return std::move(out.bytes());
    });
    detail::ByteReader in(bytes.data(), bytes.size(), "the outcome of a check");
    return in.str();
  }

  // Collective. Why `id` fails `mode`'s check, or "".
  std::string check(const std::string& id, CheckMode mode) {
    std::string why = fast_check(id);
    if (!why.empty() || mode == CheckMode::Fast) return why;
    try {
      const VerifyReport report = checkpointer->verify(id);
      if (!report.ok())
        why = std::to_string(report.bad_chunks.size()) + " bad chunk(s), the first: " + report.bad_chunks[0].message;
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      why = e.what();
    }
    return why;
  }

  void skipped(const std::string& id, const std::string& why) {
    if (group().rank() == 0) detail::log(detail::LogLevel::Warn, "checkpoint '" + id + "' is skipped: " + why);
  }

  std::optional<CheckpointInfo> latest(CheckMode mode) {
    std::vector<CheckpointInfo> all = list();
    if (tier) return tier->latest(all, mode, [&](const CheckpointInfo& info) { return check(info.id, mode); });
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      const std::string why = check(it->id, mode);
      if (why.empty()) return *it;
      skipped(it->id, why);
    }
    return std::nullopt;
  }

  std::optional<std::int64_t> restore_or_start(State& state) {
    std::vector<CheckpointInfo> all = list();
    // Loads one checkpoint under the root; false (logged) when it is damaged.
    auto restore = [&](const CheckpointInfo& info) {
      if (options.check == CheckMode::Deep) {
        const std::string why = check(info.id, CheckMode::Deep);
        if (!why.empty()) {
          skipped(info.id, why);
          return false;
        }
      }
      try {
        checkpointer->load(state, info.id, options.load);
        last_saved_step = info.step;
        if (group().rank() == 0)
          detail::log(detail::LogLevel::Info, "restored step " + std::to_string(info.step) + " from '" + info.id + "'");
        return true;
      } catch (const UsageError&) {
        throw;  // the state does not match: not the checkpoint's fault
      } catch (const UnsupportedError&) {
        throw;  // written by a newer Cairn: restarting from an older one would lose its steps
      } catch (const Error& e) {
        skipped(info.id, e.what());
      }
      return false;
    };
    if (tier) {
      const std::optional<std::int64_t> step = tier->restore(state, all, options.check, options.load, restore);
      if (step) last_saved_step = *step;
      return step;
    }
    for (auto it = all.rbegin(); it != all.rend(); ++it)
      if (restore(*it)) return it->step;
    return std::nullopt;
  }

  bool due(std::int64_t step) {
    bool is_due = options.every_steps > 0 && step % options.every_steps == 0;
    if (options.every_seconds > 0) {
      std::int64_t by_time = 0;
      if (group().rank() == 0)
        by_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_start).count() >=
                          options.every_seconds
                      ? 1
                      : 0;
      group().broadcast(&by_time, sizeof by_time, 0);
      is_due = is_due || by_time != 0;
    }
    if (options.mtbf_seconds > 0) {
      measure_finished_save();
      std::int64_t by_interval = 0;
      if (group().rank() == 0) {
        const double interval = interval_seconds();
        const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_start).count();
        // No save yet: save now, to measure one. A save not yet measured: wait for it.
        by_interval = !saved_in_this_job || (interval > 0 && since >= interval) ? 1 : 0;
      }
      group().broadcast(&by_interval, sizeof by_interval, 0);
      is_due = is_due || by_interval != 0;
    }
    return is_due;
  }

  // ManagerOptions::incremental: the base of the save of `step`, the previous checkpoint, or ""
  // for a full save (the first of this manager, and every full_every-th).
  std::string incremental_base(std::int64_t step) {
    const bool full = saves_since_full < 0 || saves_since_full + 1 >= options.full_every || last_saved_step < 0 ||
                      last_saved_step == step;
    saves_since_full = full ? 0 : saves_since_full + 1;
    return full ? std::string() : id_of(last_saved_step);
  }

  SaveFuture async_save(const State& state, std::int64_t step) {
    std::int64_t range[2] = {-step, step};  // every rank must name the same step
    group().allreduce(range, 2, ReduceOp::Max);
    if (-range[0] != range[1])
      throw UsageError("CheckpointManager: the ranks save different steps (" + std::to_string(-range[0]) + " to " +
                       std::to_string(range[1]) + ")");
    if (step < 0) throw UsageError("CheckpointManager: step " + std::to_string(step) + " is negative");
    const std::string id = id_of(step);
    const std::string name = id.substr(root.size() + 1);
    detail::SaveHooks hooks;
    hooks.before_prepare = [root = root, prefix = options.prefix, partial = "." + name + ".partial"] {
      remove_leftovers(root, prefix, partial);
    };
    hooks.after_publish = [root = root, prefix = options.prefix, keep_last = options.keep_last,
                           keep_every = options.keep_every, name, references = references] {
      detail::fault_point("retention", 0);
      std::vector<Published> found = scan_published(root, prefix);
      const std::size_t n = found.size();
      std::vector<bool> kept(n);
      std::vector<std::string> names(n);
      for (std::size_t i = 0; i < n; ++i) {
        const bool newest = i + static_cast<std::size_t>(keep_last) >= n;
        const bool milestone = keep_every > 0 && found[i].step % keep_every == 0;
        kept[i] = newest || milestone || found[i].name == name;
        names[i] = found[i].name;
      }
      // Kept too: what kept incremental checkpoints refer to (read once per checkpoint; one saved
      // again under this name may refer to others).
      references->erase(name);
      detail::keep_referenced(root, names, kept, *references);
      for (std::size_t i = 0; i < n; ++i) {
        const Published& p = found[i];
        if (kept[i]) continue;
        // Renamed first, so that a crash mid-removal never leaves a half-removed checkpoint that
        // still looks published; the next save removes the rest.
        const std::string doomed = root + "/." + p.name + ".removing";
        if (::rename((root + "/" + p.name).c_str(), doomed.c_str()) != 0)
          throw StorageError("cannot remove old checkpoint '" + root + "/" + p.name +
                             "': " + detail::errno_text(errno));
        detail::remove_tree(doomed);
      }
    };
    if (group().rank() == 0) last_save_start = std::chrono::steady_clock::now();
    SaveOptions save_options = options.save;
    if (options.incremental && !tier) save_options.incremental_from = incremental_base(step);
    if (tier) tier->prepare_save(save_options, hooks, name);  // written to the node-local tier, drained after
    SaveFuture next = detail::CheckpointerAccess::async_save(*checkpointer, state, tier ? tier->local_id(name) : id,
                                                             save_options, std::move(hooks));
    if (tier) tier->post_drain(next, name);
    measure_finished_save();  // the previous save: finished before this one started
    in_flight = std::move(next);
    in_flight_measured = false;
    saved_in_this_job = true;
    last_saved_step = step;
    return in_flight;
  }
};

CheckpointManager::CheckpointManager(MPI_Comm comm, std::string root, ManagerOptions options) {
  auto own = std::make_unique<Checkpointer>(comm);
  Checkpointer* use = own.get();
  m_impl = std::make_unique<Impl>(std::move(own), use, std::move(root), std::move(options));
}

CheckpointManager::CheckpointManager(Checkpointer& checkpointer, std::string root, ManagerOptions options)
    : m_impl(std::make_unique<Impl>(nullptr, &checkpointer, std::move(root), std::move(options))) {}

CheckpointManager::~CheckpointManager() {
  try {
    m_impl->wait();
  } catch (...) {
    // A destructor never throws; the save's error stays in its future.
  }
}

bool CheckpointManager::due(std::int64_t step) {
  return m_impl->due(step);
}

SaveFuture CheckpointManager::save_if_due(const State& state, std::int64_t step) {
  return m_impl->due(step) ? m_impl->async_save(state, step) : SaveFuture();
}

SaveFuture CheckpointManager::async_save(const State& state, std::int64_t step) {
  return m_impl->async_save(state, step);
}

void CheckpointManager::save(const State& state, std::int64_t step) {
  m_impl->async_save(state, step).get();
}

void CheckpointManager::wait() {
  m_impl->wait();
}

std::vector<CheckpointInfo> CheckpointManager::list() {
  return m_impl->list();
}

std::optional<CheckpointInfo> CheckpointManager::latest(CheckMode mode) {
  return m_impl->latest(mode);
}

std::optional<CheckpointInfo> CheckpointManager::latest() {
  return m_impl->latest(m_impl->options.check);
}

std::optional<std::int64_t> CheckpointManager::restore_or_start(State& state) {
  return m_impl->restore_or_start(state);
}

VerifyReport CheckpointManager::verify(std::int64_t step) {
  m_impl->wait();
  return m_impl->checkpointer->verify(m_impl->id_of(step));
}

double CheckpointManager::checkpoint_interval() {
  return m_impl->checkpoint_interval();
}

std::optional<double> CheckpointManager::time_left() {
  return m_impl->time_left();
}

bool CheckpointManager::should_exit(const State& state, std::int64_t step) {
  return m_impl->should_exit(state, step);
}

std::string CheckpointManager::id_of(std::int64_t step) const {
  return m_impl->id_of(step);
}

Checkpointer& CheckpointManager::checkpointer() noexcept {
  return *m_impl->checkpointer;
}

}  // namespace cairn
