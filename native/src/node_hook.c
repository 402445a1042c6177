/*
 * The library doubles as a minimal Node-API addon, loaded with process.dlopen beside koffi (which stays the API):
 * its only job is an environment cleanup hook. When a worker thread is torn down from outside (worker.terminate(),
 * or the main thread's process.exit()), no JavaScript runs in it any more, but Node still runs env cleanup hooks,
 * before the thread's isolate and its SharedArrayBuffers are freed. The hook stops and joins the copy thread of every
 * mirror that thread created, so the mirror never touches freed ring memory. Node exports these symbols from its
 * own binary; the few declarations below are the stable Node-API ABI, so no Node headers are needed to build.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>

#include "ringkernel_mirror.h"

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef int napi_status;
extern napi_status napi_add_env_cleanup_hook(napi_env env, void (*fun)(void *arg), void *arg);

static void stop_thread_mirrors(void *arg) {
  (void)arg;
  rk_mirror_stop_thread_mirrors();
}

RK_EXPORT int32_t node_api_module_get_api_version_v1(void) { return 8; }

/* Keeps an already loaded library mapped for the life of the process. Node dlcloses a worker's addons (koffi.node
   among them) when the worker's environment is destroyed, and the mirror's waker thread may still be inside
   koffi's callback relay then (it returns from it once Node tears the relay down): unmapped code under a running
   thread is a SIGSEGV. This library itself is linked with -z nodelete for the same reason. Returns 1 when pinned. */
RK_EXPORT int32_t rk_pin_loaded_library(const char *path) {
  return dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != NULL ? 1 : 0;
}

RK_EXPORT napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  /* Registered on the thread that loads the addon, which is the thread whose mirrors it stops. */
  napi_add_env_cleanup_hook(env, stop_thread_mirrors, NULL);
  return exports;
}
