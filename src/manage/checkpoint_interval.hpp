// When to checkpoint: the optimum interval from a save's cost and the mean time between failures
// (Young, Daly), the time a batch job has left, and the record of measured save costs.
#pragma once

#include <cairn/future.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace cairn::detail {

/// The environment variables that give a job's end as Unix seconds, in the order they are read:
/// Cairn's own (for any batch system, set in the job script), then Slurm's (22.05 and later).
inline constexpr const char* job_end_variables[] = {"CAIRN_JOB_END_TIME", "SLURM_JOB_END_TIME"};

/// The job's end in Unix seconds from the first of job_end_variables that is set, or nullopt.
/// Throws UsageError naming the variable when its value is not a positive number of seconds.
std::optional<double> job_end_from_environment();

/// Seconds since the Unix epoch, by the system clock.
double unix_now();

/// Costs of the most recent saves on this rank, newest last; medians of a few, so that one slow
/// save on a noisy file system does not swing the interval.
class SaveCostRecord {
 public:
  void add(const SaveTimings& timings);
  bool empty() const noexcept { return m_stalls.empty(); }
  /// Median time the caller was blocked per save (async_save's stall, waiting included).
  double stall_seconds() const;
  /// Median time from the start of a save to its publication (stall, write and commit).
  double whole_seconds() const;

 private:
  static constexpr std::size_t kept = 5;
  std::vector<double> m_stalls;
  std::vector<double> m_wholes;
};

}  // namespace cairn::detail
