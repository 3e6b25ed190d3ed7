// Fuzz target `metadata`: cairn::detail::decode_metadata on arbitrary bytes.
//
// Every input is decoded twice: as given, and with its trailing checksum repaired so that
// mutations reach the decoder behind the checksum. Only cairn::Error may come out. A blob that
// decodes must re-encode to the very same bytes (the encoding is canonical) and decode again to
// equal metadata.
#include <cairn/error.hpp>

#include "core/metadata_codec.hpp"
#include "fuzz_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace cairn;

void decode_and_check(const std::byte* data, std::size_t size) {
  Metadata decoded;
  try {
    decoded = detail::decode_metadata(data, size, "fuzz input");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Internal) fuzz::finding(std::string("InternalError on bad metadata: ") + e.what());
    return;
  }
  const std::vector<std::byte> encoded = detail::encode_metadata(decoded);
  // An older format is written back in the current one, so only the current one re-encodes to
  // the same bytes; both must decode back to the same metadata.
  if (decoded.format_version == format_version &&
      (encoded.size() != size || (size > 0 && std::memcmp(encoded.data(), data, size) != 0)))
    fuzz::finding("decoded metadata re-encodes to different bytes");
  Metadata again;
  try {
    again = detail::decode_metadata(encoded.data(), encoded.size(), "re-encoded fuzz input");
  } catch (const Error& e) {
    fuzz::finding(std::string("re-encoded metadata does not decode: ") + e.what());
  }
  Metadata expected = decoded;  // as written back: in the current format at least
  expected.format_version = std::max(decoded.format_version, format_version);
  if (!fuzz::same_metadata(expected, again)) fuzz::finding("metadata differs after encode and decode");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size heap copy: reads past the end are caught by AddressSanitizer.
  std::vector<std::byte> blob(reinterpret_cast<const std::byte*>(data),
                              reinterpret_cast<const std::byte*>(data) + size);
  decode_and_check(blob.data(), blob.size());
  fuzz::repair_checksum(blob);
  decode_and_check(blob.data(), blob.size());
  return 0;
}
