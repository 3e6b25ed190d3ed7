# Spack package for Cairn. Validation with Spack itself is tracked by the users'-surface issue;
# see spack/README.md for how to use this repository.
from spack_repo.builtin.build_systems.cmake import CMakePackage

from spack.package import *


class Cairn(CMakePackage):
    """Asynchronous, crash-safe distributed checkpoints for MPI simulation codes, stored as
    parallel HDF5 global arrays."""

    homepage = "https://example.invalid/cairn"
    git = "https://example.invalid/cairn.git"

    version("main", branch="main")

    variant("kokkos", default=False, description="Build the Kokkos adapter (cairn::kokkos)")
    variant("cuda", default=False, description="Support CUDA device arrays")
    variant("nccl", default=False, description="NCCL process group for device buffers")
    variant("tests", default=False, description="Build the test suite")

    depends_on("cxx", type="build")
    depends_on("c", type="build")
    depends_on("cmake@3.20:", type="build")
    depends_on("mpi")
    depends_on("hdf5@1.10:+mpi")
    depends_on("xxhash")
    depends_on("googletest", when="+tests", type=("build", "test"))
    depends_on("kokkos@3.4:", when="+kokkos")
    depends_on("cuda", when="+cuda")
    depends_on("nccl", when="+nccl")
    conflicts("+nccl", when="~cuda", msg="the NCCL process group needs +cuda")

    def cmake_args(self):
        return [
            self.define_from_variant("CAIRN_ENABLE_KOKKOS", "kokkos"),
            self.define_from_variant("CAIRN_ENABLE_CUDA", "cuda"),
            self.define_from_variant("CAIRN_ENABLE_NCCL", "nccl"),
            self.define_from_variant("CAIRN_BUILD_TESTS", "tests"),
            self.define("CAIRN_BUILD_EXAMPLES", False),
            self.define("CAIRN_BUILD_BENCHMARKS", False),
        ]
