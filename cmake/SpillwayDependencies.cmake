# Third-party dependencies, all from Debian packages (scripts/setup.sh).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# io_uring (Debian: liburing-dev): the disk tier keeps a record's payload
# write in flight while it hashes; without a usable ring at run time
# (seccomp, kernel.io_uring_disabled) it falls back to plain system calls.
pkg_check_modules(LIBURING REQUIRED IMPORTED_TARGET liburing)
# The graph executor: a host BLAS (OpenBLAS from Debian) and JSON node definitions.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
# Live stats in shared memory: Boost.Interprocess (header-only; Debian:
# libboost-dev), private to libspillway, and shm_open, which glibc before
# 2.34 keeps in librt.
find_package(Boost 1.74 REQUIRED)
include(CheckLibraryExists)
check_library_exists(rt shm_open "" SPILLWAY_HAVE_LIBRT)
# The offline bound's min-cost flow (src/offline/flow_bound.cpp): LEMON's
# network simplex, header-only for that part (Debian: liblemon-dev).
find_path(LEMON_INCLUDE_DIR lemon/network_simplex.h)
if(NOT LEMON_INCLUDE_DIR)
  message(FATAL_ERROR "spillway: LEMON's lemon/network_simplex.h not found (Debian: apt-get install liblemon-dev; scripts/setup.sh installs it)")
endif()
