#include "manage/checkpoint_interval.hpp"

#include <cairn/error.hpp>
#include <cairn/manager.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

namespace cairn {

double optimal_checkpoint_interval(double save_cost_seconds, double mtbf_seconds) {
  if (!(save_cost_seconds >= 0) || !std::isfinite(save_cost_seconds))
    throw UsageError("optimal_checkpoint_interval: the save cost must be a finite number of seconds, not negative");
  if (!(mtbf_seconds > 0) || !std::isfinite(mtbf_seconds))
    throw UsageError(
        "optimal_checkpoint_interval: the mean time between failures must be a positive, finite "
        "number of seconds");
  const double cost = save_cost_seconds, mtbf = mtbf_seconds;
  // Daly's higher-order estimate; Young's sqrt(2 C M) is its first term. Beyond C = 2M the model
  // says to checkpoint once per mean time between failures.
  if (cost >= 2 * mtbf) return mtbf;
  const double ratio = cost / (2 * mtbf);
  return std::sqrt(2 * cost * mtbf) * (1 + std::sqrt(ratio) / 3 + ratio / 9) - cost;
}

namespace detail {

std::optional<double> job_end_from_environment() {
  for (const char* name : job_end_variables) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') continue;
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    while (end != nullptr && (*end == ' ' || *end == '\n')) ++end;
    if (end == text || end == nullptr || *end != '\0' || !(value > 0) || !std::isfinite(value))
      throw UsageError(std::string("the job's end time in ") + name + " is '" + text +
                       "', not a positive number of Unix seconds");
    return value;
  }
  return std::nullopt;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  return values[mid];
}

void push_bounded(std::vector<double>& values, double value, std::size_t limit) {
  if (values.size() == limit) values.erase(values.begin());
  values.push_back(value);
}

}  // namespace

void SaveCostRecord::add(const SaveTimings& timings) {
  push_bounded(m_stalls, timings.stall_seconds, kept);
  push_bounded(m_wholes, timings.stall_seconds + timings.write_seconds + timings.commit_seconds, kept);
}

double SaveCostRecord::stall_seconds() const {
  return median(m_stalls);
}

double SaveCostRecord::whole_seconds() const {
  return median(m_wholes);
}

}  // namespace detail

}  // namespace cairn
