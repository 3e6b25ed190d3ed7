// A one-line progress bar on a terminal, for the commands that read a whole checkpoint.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace cairn::cli {

/// "12.5 MiB", "830 B": a byte count in binary units.
std::string human_bytes(std::uint64_t bytes);

/// Draws "label [#####.....]  45%  12.0 MiB / 26.5 MiB" on `out`, redrawn in place with '\r' at
/// most ten times a second, and erased when done. Does nothing unless enabled (the tool enables
/// it only when stderr is a terminal), so tests and pipes never see it.
class Progress {
 public:
  Progress(std::ostream& out, bool enabled, std::string label, std::uint64_t total)
      : m_out(out), m_enabled(enabled && total > 0), m_label(std::move(label)), m_total(total) {}
  ~Progress() { done(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Counts `bytes` more as done.
  void add(std::uint64_t bytes) {
    m_done += bytes;
    if (!m_enabled) return;
    const auto now = std::chrono::steady_clock::now();
    if (m_drawn && now - m_last < std::chrono::milliseconds(100) && m_done < m_total) return;
    m_last = now;
    draw();
  }

  /// Erases the bar (idempotent).
  void done() {
    if (!m_enabled || !m_drawn) return;
    m_out << '\r' << std::string(m_width, ' ') << '\r' << std::flush;
    m_drawn = false;
  }

  std::uint64_t bytes_done() const noexcept { return m_done; }

 private:
  void draw() {
    const std::uint64_t done = m_done < m_total ? m_done : m_total;
    const int percent = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(m_total));
    const int filled = percent * 30 / 100;
    std::string line = m_label + " [" + std::string(static_cast<std::size_t>(filled), '#') +
                       std::string(static_cast<std::size_t>(30 - filled), '.') + "] " + std::to_string(percent) +
                       "%  " + human_bytes(done) + " / " + human_bytes(m_total);
    if (line.size() < m_width) line += std::string(m_width - line.size(), ' ');
    m_width = line.size();
    m_out << '\r' << line << std::flush;
    m_drawn = true;
  }

  std::ostream& m_out;
  bool m_enabled;
  std::string m_label;
  std::uint64_t m_total;
  std::uint64_t m_done = 0;
  bool m_drawn = false;
  std::size_t m_width = 0;
  std::chrono::steady_clock::time_point m_last{};
};

}  // namespace cairn::cli
