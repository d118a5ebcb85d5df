{
  "targets": [
    {
      "target_name": "ambit_net",
      "sources": ["src/ambit_net.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
