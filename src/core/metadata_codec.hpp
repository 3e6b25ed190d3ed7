// Binary form of a checkpoint's metadata (and of the entry descriptions plans exchange).
#pragma once

#include <cairn/storage.hpp>

#include "core/byte_codec.hpp"

#include <cstddef>
#include <vector>

namespace cairn::detail {

void encode_entry_info(ByteWriter& out, const EntryInfo& entry, bool with_value);
EntryInfo decode_entry_info(ByteReader& in, bool with_value);
void encode_region(ByteWriter& out, const Region& region);
Region decode_region(ByteReader& in);

/// Encodes metadata with a magic, the format version and a trailing xxh3-64 of the whole blob.
std::vector<std::byte> encode_metadata(const Metadata& metadata);

/// Decodes and checks a blob from `source` (a file name, for messages). Throws
/// CorruptCheckpointError for a damaged or foreign blob and UnsupportedError for a format
/// version newer than this library's.
Metadata decode_metadata(const std::byte* data, std::size_t size, const std::string& source);

}  // namespace cairn::detail
