"""Builds spillway._spillway with the project's CMake for pip.

``pip install --no-build-isolation ./python`` (from the repository root) runs
this: it configures the repository with SPILLWAY_PYTHON=ON for the
interpreter that runs pip (tests, tools and benchmarks off), builds the
extension and libspillway, installs them into a staging folder through the
``spillway_python`` install component (with RPATH ``$ORIGIN``), and copies
both into the package. Everything it needs comes from Debian packages
(scripts/setup.sh); nothing is downloaded.

Environment:
    SPILLWAY_SOURCE_DIR       the repository (default: the parent of this folder)
    SPILLWAY_CMAKE_BUILD_DIR  an already configured build tree to build in
                              instead of a fresh one (its interpreter must be
                              the one running pip)
    CMAKE_BUILD_PARALLEL_LEVEL  compile jobs (CMake's own variable)
    SPILLWAY_CMAKE_ARGS       more -D options for the configure step
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    """Builds the extension with CMake instead of compiling sources itself."""

    def build_extension(self, ext: Extension) -> None:
        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError("spillway: building the extension needs cmake (scripts/setup.sh installs it)")
        source_dir = Path(os.environ.get("SPILLWAY_SOURCE_DIR", HERE.parent)).resolve()
        if not (source_dir / "python" / "src" / "module.cpp").exists():
            raise RuntimeError(f"spillway: {source_dir} is not the spillway repository (SPILLWAY_SOURCE_DIR)")
        temp = Path(self.build_temp).resolve()
        reuse = os.environ.get("SPILLWAY_CMAKE_BUILD_DIR")
        build_dir = Path(reuse).resolve() if reuse else temp / "cmake"
        if not reuse:
            self._configure(cmake, source_dir, build_dir)
        self._run([cmake, "--build", str(build_dir), "--target", "spillway_python"])
        stage = temp / "stage"
        shutil.rmtree(stage, ignore_errors=True)
        install = [cmake, "--install", str(build_dir), "--component", "spillway_python"]
        self._run(install + ["--prefix", str(stage)])
        self._copy_staged(stage / "spillway", Path(self.get_ext_fullpath(ext.name)))

    def _configure(self, cmake: str, source_dir: Path, build_dir: Path) -> None:
        import pybind11  # Debian: python3-pybind11

        args = [
            cmake,
            "-S",
            str(source_dir),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DSPILLWAY_PYTHON=ON",
            "-DSPILLWAY_BUILD_TESTS=OFF",
            "-DSPILLWAY_BUILD_TOOLS=OFF",
            "-DSPILLWAY_BUILD_BENCH=OFF",
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        ]
        if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
            args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("SPILLWAY_CMAKE_ARGS", ""))
        self._run(args)

    def _copy_staged(self, staged: Path, extension_path: Path) -> None:
        """Copies the extension and libspillway (under its soname) next to the package's .py files."""
        extension_path.parent.mkdir(parents=True, exist_ok=True)
        found_extension = False
        for path in staged.iterdir():
            if path.name.startswith("_spillway"):
                shutil.copyfile(path, extension_path)
                found_extension = True
            elif path.name.startswith("libspillway.so") and path.is_symlink():
                # The soname link (libspillway.so.0): the file the extension
                # asks the loader for. A wheel has no symlinks, so copy the
                # library's bytes under that name.
                shutil.copyfile(path.resolve(), extension_path.parent / path.name)
        if not found_extension:
            raise RuntimeError(f"spillway: the CMake install put no extension module in {staged}")

    def _run(self, command: list) -> None:
        print("spillway:", " ".join(shlex.quote(str(c)) for c in command), flush=True)
        subprocess.run(command, check=True)


setup(
    ext_modules=[Extension("spillway._spillway", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
