# Conan 2 recipe: goro is header-only; consumers get the headers and goro::goro through the
# CMake package config that goro installs (find_package(goro)).
from conan import ConanFile
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy


class GoroConan(ConanFile):
    name = "goro"
    version = "0.1.0"
    license = "MIT"
    description = "Go's concurrency model for C++20: goroutines, channels, select, sync, context"
    topics = ("concurrency", "coroutines", "fibers", "channels", "goroutines")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "CMakeLists.txt", "include/*"
    no_copy_source = True

    def requirements(self):
        self.requires("boost/1.81.0", transitive_headers=True)

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.variables["GORO_BUILD_TESTS"] = False
        tc.variables["GORO_BUILD_EXAMPLES"] = False
        tc.variables["GORO_BUILD_BENCH"] = False
        tc.generate()

    def package(self):
        copy(self, "*.hpp", src=self.source_folder + "/include", dst=self.package_folder + "/include")

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "goro")
        self.cpp_info.set_property("cmake_target_name", "goro::goro")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["boost::context"]
        self.cpp_info.system_libs = ["pthread"]
