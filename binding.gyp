# node-gyp build of the rl4qe native backend (scripts/build-native.mjs runs it at npm install).
# The GEMM/attention kernels are compiled three times from native/isa_impl.h, each translation
# unit with its own -m flags in its own static library (plus the int8-dot kernels of
# native/qdot_vnni.cc, with -mavx512vnni, and the bf16 GEMM of native/gemm_bf16.cc, with
# -mavx512bf16); addon.cc picks one at run time from the
# CPU features. The baseline objects (addon, ops, generic kernels) come first on the link line so
# the linker keeps their copies of any shared inline code.
{
  "target_defaults": {
    "cflags_cc": ["-O3", "-fPIC", "-fopenmp", "-std=c++17", "-fexceptions", "-Wno-unused-function"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-O2", "-Os"],
    "cflags!": ["-fno-exceptions", "-O2", "-Os"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fopenmp", "-std=c++17"]
    }
  },
  "targets": [
    {
      "target_name": "rl4qe_native",
      "sources": ["native/addon.cc", "native/allocator.cc", "native/ops.cc", "native/cpu.cc", "native/gemm_generic.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "libraries": ["-fopenmp", "-ldl"],
      "ldflags": ["-fopenmp"],
      "conditions": [
        [
          "target_arch=='x64'",
          { "dependencies": ["rl4qe_isa_avx2", "rl4qe_isa_avx512", "rl4qe_isa_avx512vnni", "rl4qe_isa_avx512bf16"] }
        ]
      ]
    }
  ],
  "conditions": [
    [
      "target_arch=='x64'",
      {
        "targets": [
          {
            "target_name": "rl4qe_isa_avx2",
            "type": "static_library",
            "sources": ["native/gemm_avx2.cc"],
            "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
          },
          {
            "target_name": "rl4qe_isa_avx512",
            "type": "static_library",
            "sources": ["native/gemm_avx512.cc"],
            "cflags_cc": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma", "-mf16c", "-Wno-uninitialized", "-Wno-maybe-uninitialized"]
          },
          {
            "target_name": "rl4qe_isa_avx512vnni",
            "type": "static_library",
            "sources": ["native/qdot_vnni.cc"],
            "cflags_cc": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"]
          },
          {
            "target_name": "rl4qe_isa_avx512bf16",
            "type": "static_library",
            "sources": ["native/gemm_bf16.cc"],
            "cflags_cc": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c"]
          }
        ]
      }
    ]
  ]
}
