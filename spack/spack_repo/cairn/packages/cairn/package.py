# Spack package for Cairn (package API v2, Spack 1.x). How it was validated: spack/README.md.
from spack_repo.builtin.build_systems.cmake import CMakePackage
from spack_repo.builtin.build_systems.cuda import CudaPackage

from spack.package import *


class Cairn(CMakePackage, CudaPackage):
    """Asynchronous, crash-safe distributed checkpoints for MPI simulation codes, stored as
    parallel HDF5 global arrays. C++17 library with C and Fortran APIs, a Kokkos adapter,
    CUDA device arrays with an NCCL process group, and the `cairn` command-line tool."""

    # Cairn is not published yet, so it has no release to checksum: its one version is the
    # "develop" branch. The URL below is where the project means to publish; until it exists,
    # build from a clone with `spack develop` (spack/README.md), or point the recipe at any clone
    # in packages.yaml:  packages: {cairn: {package_attributes: {git: <url or path of a clone>}}}
    git = "https://github.com/cairn-hpc/cairn.git"

    version("develop", branch="main")

    variant("shared", default=False, description="Build libcairn as a shared library")
    variant("kokkos", default=False, description="Build the Kokkos adapter (cairn::kokkos)")
    variant("nccl", default=False, description="Build the NCCL process group for device buffers")
    variant("fortran", default=False, description="Build the Fortran module (cairn::fortran)")
    variant("tests", default=False, description="Build the test suite, the examples and the benchmarks")

    depends_on("c", type="build")
    depends_on("cxx", type="build")
    depends_on("fortran", type="build", when="+fortran")
    depends_on("cmake@3.20:", type="build")
    depends_on("pkgconfig", type="build")

    depends_on("mpi")
    depends_on("hdf5@1.10:+mpi")
    depends_on("xxhash")
    depends_on("zlib-api")
    depends_on("zstd")
    depends_on("cli11", type="build")
    depends_on("googletest", type=("build", "test"), when="+tests")

    depends_on("kokkos@3.4:", when="+kokkos")
    depends_on("nccl", when="+nccl")
    # Device builds of Kokkos and NCCL for the same GPU generation as Cairn's.
    for _arch in CudaPackage.cuda_arch_values:
        depends_on(f"kokkos+cuda cuda_arch={_arch}", when=f"+kokkos+cuda cuda_arch={_arch}")
        depends_on(f"nccl cuda_arch={_arch}", when=f"+nccl+cuda cuda_arch={_arch}")

    conflicts("+nccl", when="~cuda", msg="the NCCL process group moves device buffers: it needs +cuda")

    def cmake_args(self):
        tests = self.spec.satisfies("+tests")
        return [
            self.define_from_variant("BUILD_SHARED_LIBS", "shared"),
            self.define_from_variant("CAIRN_ENABLE_KOKKOS", "kokkos"),
            self.define_from_variant("CAIRN_ENABLE_CUDA", "cuda"),
            self.define_from_variant("CAIRN_ENABLE_NCCL", "nccl"),
            self.define_from_variant("CAIRN_ENABLE_FORTRAN", "fortran"),
            self.define("CAIRN_ENABLE_ZSTD", True),
            self.define_from_variant("CAIRN_BUILD_TESTS", "tests"),
            self.define("CAIRN_BUILD_EXAMPLES", tests),
            self.define("CAIRN_BUILD_BENCHMARKS", tests),
        ]

    def check(self):
        """`spack install --test=root cairn+tests`: the whole ctest suite, after the build."""
        if not self.spec.satisfies("+tests"):
            print("cairn: built without +tests, so there is no test suite to run")
            return
        with working_dir(self.build_directory):
            ctest("--output-on-failure", "-j", str(make_jobs))
