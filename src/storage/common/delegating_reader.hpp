// A reader that picks another reader when a checkpoint is opened and hands everything else to it:
// the base of the readers that tell layouts apart.
#pragma once

#include <cairn/error.hpp>
#include <cairn/storage.hpp>

#include <memory>
#include <vector>

namespace cairn::detail {

class DelegatingReader : public StorageReader {
 public:
  const Metadata& metadata() const override {
    if (!m_inner) throw UsageError("the metadata of a checkpoint reader that was never opened");
    return m_inner->metadata();
  }
  void read(const std::vector<ReadRequest>& requests) override {
    if (!m_inner) throw UsageError("read from a checkpoint reader that was never opened");
    m_inner->read(requests);
  }
  void close() noexcept override {
    if (m_inner) m_inner->close();
  }

 protected:
  /// Set by open() in the derived class, to the reader of the layout found.
  std::unique_ptr<StorageReader> m_inner;
};

}  // namespace cairn::detail
