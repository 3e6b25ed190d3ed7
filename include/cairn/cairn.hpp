// Umbrella header: everything in Cairn's C++ API.
#pragma once

#include <cairn/checkpointer.hpp>
#include <cairn/convert.hpp>
#include <cairn/dtype.hpp>
#include <cairn/error.hpp>
#include <cairn/future.hpp>
#include <cairn/manager.hpp>
#include <cairn/planner.hpp>
#include <cairn/process_group.hpp>
#include <cairn/state.hpp>
#include <cairn/storage.hpp>
