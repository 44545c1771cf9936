"""Build the optional C kernels (sigmax._kernels._ck); all metadata lives in pyproject.toml.

The extension is optional: where no C compiler is available the build goes on without it and sigmax
uses its generic Array-API code (the kernels are only a faster path for the same results).
"""

import sys

from setuptools import Extension, setup

if sys.platform == "win32":  # MSVC has no GCC vector extensions: generic code only
    ext_modules = []
else:
    ext_modules = [
        Extension(
            "sigmax._kernels._ck",
            sources=["src/sigmax/_kernels/_ck.c"],
            depends=["src/sigmax/_kernels/" + h for h in ("kern.h", "kern_t.h", "kern_cols_t.h", "vec.h", "pool.h", "cache.h", "ffi.h")],
            # -O3 and nothing that relaxes IEEE semantics (no -ffast-math: it breaks inf/NaN handling
            # and flushes subnormals); AVX2 code is selected per function at import, not with -march.
            extra_compile_args=["-O3", "-std=gnu11", "-Wno-psabi", "-fno-strict-aliasing",
                                "-Werror=implicit-function-declaration"],
            libraries=["m"],
            optional=True,
        )
    ]

setup(ext_modules=ext_modules)
