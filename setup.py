"""The one compiled part: ingest's columnar decoder (src/distillguard/ingest/_native, see its README).

It is optional: when no C compiler is at hand the build goes on without it and ingest decodes in Python,
with the same results, ~3x slower.
"""

from setuptools import Extension, setup

NATIVE = "src/distillguard/ingest/_native"

setup(
    ext_modules=[
        Extension(
            "distillguard.ingest._columnar",
            sources=[f"{NATIVE}/columnar.c", f"{NATIVE}/yyjson.c"],
            include_dirs=[NATIVE],
            extra_compile_args=["-O3", "-std=c11"],
            optional=True,
        )
    ]
)
