/*
 * The project's entry points into QuickJS, built as a WASI reactor (see
 * build-engine.sh). The host calls one export per instance: engine_compile
 * turns a script into QuickJS bytecode, engine_run evaluates a script or its
 * bytecode and calls its global `konnector.run(job)`, engine_run_loaded calls
 * it in an instance started from a snapshot taken after engine_init (below).
 * Each instance serves a single call and is then discarded, so nothing is
 * freed: a trap (fuel, memory) can leave no state behind for a later job.
 *
 * Inputs are written by the host into memory from engine_alloc, each followed
 * by a 0 byte (QuickJS's parsers read up to it). The outcome (bytecode or an
 * error message) is read back at engine_output_ptr / engine_output_len.
 * Host functions are core-module imports of the module "konnector".
 * `call` is the generic one every interface of the konnector world goes
 * through (runner/quickjs/host-calls.ts): the guest hands it a JSON text and
 * one byte buffer, the host answers with one block it allocated with
 * engine_alloc: a little-endian u32 text length, the JSON text, then bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
#include "quickjs.h"

#define IMPORT(name) __attribute__((import_module("konnector"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("log") void host_log(const char *level, size_t level_len, const char *message, size_t message_len);
/* Milliseconds since the epoch, already coarsened by the host. */
IMPORT("clock_now") double host_clock_now(void);
IMPORT("random_fill") void host_random_fill(void *buf, size_t len);
/* One call of the konnector world; returns the answer block (0: no memory left for it). */
IMPORT("call") uint8_t *host_call(const char *text, size_t text_len, const uint8_t *bytes, size_t bytes_len, size_t *answer_len);

enum { ENGINE_OK = 0, ENGINE_FAILED = 1 };

/* Errors go to a static buffer: they are often about memory running out. */
static char error_buf[8192];
static const uint8_t *output;
static size_t output_len;
static int called, ran_loaded;

EXPORT("engine_alloc") void *engine_alloc(size_t len) { return malloc(len ? len : 1); }
EXPORT("engine_output_ptr") const uint8_t *engine_output_ptr(void) { return output; }
EXPORT("engine_output_len") size_t engine_output_len(void) { return output_len; }

static void error_append(const char *text) {
  size_t n = strlen(text);
  if (n > sizeof error_buf - 1 - output_len) n = sizeof error_buf - 1 - output_len;
  memcpy(error_buf + output_len, text, n);
  output_len += n;
  error_buf[output_len] = 0;
}

static int fail(const char *message, const char *detail) {
  output = (const uint8_t *)error_buf;
  output_len = 0;
  error_append(message);
  if (detail) error_append(detail);
  return ENGINE_FAILED;
}

/* A thrown value as text: its string form, then its stack when it has one. */
static int fail_with_value(JSContext *ctx, JSValueConst value) {
  const char *text = JS_ToCString(ctx, value);
  fail(text ? text : "(a thrown value that cannot be converted to a string)", NULL);
  if (text) JS_FreeCString(ctx, text);
  if (JS_IsError(ctx, value)) {
    JSValue stack = JS_GetPropertyStr(ctx, value, "stack");
    const char *trace = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
    if (trace) {
      error_append("\n");
      error_append(trace);
      JS_FreeCString(ctx, trace);
    }
    JS_FreeValue(ctx, stack);
  }
  return ENGINE_FAILED;
}

static int fail_with_exception(JSContext *ctx) {
  JSValue exception = JS_GetException(ctx);
  return fail_with_value(ctx, exception);
}

static JSValue js_log(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  size_t level_len, message_len;
  const char *level = JS_ToCStringLen(ctx, &level_len, argv[0]);
  if (!level) return JS_EXCEPTION;
  const char *message = JS_ToCStringLen(ctx, &message_len, argv[1]);
  if (!message) {
    JS_FreeCString(ctx, level);
    return JS_EXCEPTION;
  }
  host_log(level, level_len, message, message_len);
  JS_FreeCString(ctx, level);
  JS_FreeCString(ctx, message);
  return JS_UNDEFINED;
}

static JSValue js_now(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  return JS_NewFloat64(ctx, host_clock_now());
}

/* Math.random from the host's CSPRNG: QuickJS would seed its own from the clock. */
static JSValue js_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  uint64_t bits;
  host_random_fill(&bits, sizeof bits);
  return JS_NewFloat64(ctx, (double)(bits >> 11) * 0x1.0p-53);
}

/*
 * __host.call(text, bytes): text a string, bytes an ArrayBuffer or undefined.
 * Returns [text, ArrayBuffer] from the host's answer block, which is freed.
 */
static JSValue js_call(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  size_t text_len, bytes_len = 0, answer_len = 0;
  uint8_t *bytes = NULL;
  if (argc > 1 && !JS_IsUndefined(argv[1])) {
    bytes = JS_GetArrayBuffer(ctx, &bytes_len, argv[1]);
    if (!bytes) return JS_EXCEPTION;
  }
  const char *text = JS_ToCStringLen(ctx, &text_len, argv[0]);
  if (!text) return JS_EXCEPTION;
  uint8_t *answer = host_call(text, text_len, bytes, bytes_len, &answer_len);
  JS_FreeCString(ctx, text);
  if (!answer) return JS_ThrowOutOfMemory(ctx);
  uint32_t answer_text_len = 0;
  if (answer_len >= 4) memcpy(&answer_text_len, answer, 4);
  if (answer_len < 4 || answer_text_len > answer_len - 4) {
    free(answer);
    return JS_ThrowInternalError(ctx, "the host's answer is malformed");
  }
  JSValue answer_text = JS_NewStringLen(ctx, (const char *)answer + 4, answer_text_len);
  JSValue answer_bytes = JS_NewArrayBufferCopy(ctx, answer + 4 + answer_text_len, answer_len - 4 - answer_text_len);
  free(answer);
  JSValue result = JS_NewArray(ctx);
  if (JS_IsException(answer_text) || JS_IsException(answer_bytes) || JS_IsException(result)) {
    JS_FreeValue(ctx, answer_text);
    JS_FreeValue(ctx, answer_bytes);
    JS_FreeValue(ctx, result);
    return JS_EXCEPTION;
  }
  JS_SetPropertyUint32(ctx, result, 0, answer_text);
  JS_SetPropertyUint32(ctx, result, 1, answer_bytes);
  return result;
}

static JSRuntime *runtime;
static int settled, run_failed;

/* Called once by the settle snippet with (true) or (false, reason). */
static JSValue js_settle(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  settled = 1;
  run_failed = !JS_ToBool(ctx, argv[0]);
  if (run_failed) fail_with_value(ctx, argv[1]);
  return JS_UNDEFINED;
}

static JSContext *new_context(void) {
  if (!runtime) runtime = JS_NewRuntime();
  JSContext *ctx = runtime ? JS_NewContext(runtime) : NULL;
  if (!ctx) return NULL;
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue host = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, host, "log", JS_NewCFunction(ctx, js_log, "log", 2));
  JS_SetPropertyStr(ctx, host, "now", JS_NewCFunction(ctx, js_now, "now", 0));
  JS_SetPropertyStr(ctx, host, "call", JS_NewCFunction(ctx, js_call, "call", 2));
  JS_SetPropertyStr(ctx, global, "__host", host);
  JSValue math = JS_GetPropertyStr(ctx, global, "Math");
  JS_SetPropertyStr(ctx, math, "random", JS_NewCFunction(ctx, js_random, "random", 0));
  JS_FreeValue(ctx, math);
  JS_FreeValue(ctx, global);
  return ctx;
}

static int once(void) {
  if (called) return fail("an engine instance serves one call; instantiate a fresh one", NULL);
  called = 1;
  return ENGINE_OK;
}

EXPORT("engine_compile") int engine_compile(const char *source, size_t source_len) {
  if (once() != ENGINE_OK) return ENGINE_FAILED;
  JSContext *ctx = new_context();
  if (!ctx) return fail("out of memory creating the JavaScript context", NULL);
  JSValue compiled = JS_Eval(ctx, source, source_len, "konnector.js", JS_EVAL_TYPE_GLOBAL | JS_EVAL_FLAG_COMPILE_ONLY);
  if (JS_IsException(compiled)) return fail_with_exception(ctx);
  size_t size;
  uint8_t *bytecode = JS_WriteObject(ctx, &size, compiled, JS_WRITE_OBJ_BYTECODE);
  if (!bytecode) return fail_with_exception(ctx);
  output = bytecode;
  output_len = size;
  return ENGINE_OK;
}

/*
 * Calls the global konnector.run(job) in ctx, settles its promise by running
 * the job queue, and reports how it ended.
 */
static int run_konnector(JSContext *ctx, const char *job, size_t job_len) {
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue konnector = JS_GetPropertyStr(ctx, global, "konnector");
  JSValue run = JS_GetPropertyStr(ctx, konnector, "run");
  if (!JS_IsFunction(ctx, run)) return fail("the script defines no global konnector.run function", NULL);
  JSValue job_value = JS_ParseJSON(ctx, job, job_len, "job");
  if (JS_IsException(job_value)) return fail_with_exception(ctx);
  static const char settle_source[] =
      "(outcome, settle) => Promise.resolve(outcome).then(() => settle(true), (e) => settle(false, e))";
  JSValue settle_with = JS_Eval(ctx, settle_source, sizeof settle_source - 1, "settle.js", JS_EVAL_TYPE_GLOBAL);
  if (JS_IsException(settle_with)) return fail_with_exception(ctx);
  JSValue args[2];
  args[0] = JS_Call(ctx, run, konnector, 1, &job_value);
  if (JS_IsException(args[0])) return fail_with_exception(ctx);
  args[1] = JS_NewCFunction(ctx, js_settle, "settle", 2);
  JSValue chained = JS_Call(ctx, settle_with, JS_UNDEFINED, 2, args);
  if (JS_IsException(chained)) return fail_with_exception(ctx);
  JSContext *job_ctx;
  int pending;
  while ((pending = JS_ExecutePendingJob(runtime, &job_ctx)) > 0) {
  }
  if (pending < 0) return fail_with_exception(job_ctx);
  if (!settled) return fail("the konnector's run never settled: it waits for something that never happens", NULL);
  if (run_failed) return ENGINE_FAILED;
  output_len = 0;
  return ENGINE_OK;
}

/* Evaluates a script or its bytecode in a fresh context: the konnector loaded, its top level run. */
static int load_konnector(JSContext **loaded, const uint8_t *code, size_t code_len, int is_bytecode) {
  JSContext *ctx = new_context();
  if (!ctx) return fail("out of memory creating the JavaScript context", NULL);
  *loaded = ctx;
  JSValue result;
  if (is_bytecode) {
    JSValue function = JS_ReadObject(ctx, code, code_len, JS_READ_OBJ_BYTECODE);
    if (JS_IsException(function)) return fail_with_exception(ctx);
    result = JS_EvalFunction(ctx, function);
  } else {
    result = JS_Eval(ctx, (const char *)code, code_len, "konnector.js", JS_EVAL_TYPE_GLOBAL);
  }
  if (JS_IsException(result)) return fail_with_exception(ctx);
  JS_FreeValue(ctx, result);
  return ENGINE_OK;
}

EXPORT("engine_run") int engine_run(const uint8_t *code, size_t code_len, int is_bytecode, const char *job, size_t job_len) {
  if (once() != ENGINE_OK) return ENGINE_FAILED;
  JSContext *ctx;
  if (load_konnector(&ctx, code, code_len, is_bytecode) != ENGINE_OK) return ENGINE_FAILED;
  return run_konnector(ctx, job, job_len);
}

/*
 * The snapshot's pair (the Wizer way, runner/quickjs/snapshot.ts). engine_init
 * takes no parameters, as the pre-initializer calls it: it reads the
 * konnector's bytecode from stdin to its end, evaluates it and keeps the
 * context. The pre-initializer then writes the instance's memory and globals
 * into the module, so every instance of it starts with the konnector loaded;
 * engine_run_loaded calls konnector.run(job) on that context, once per
 * instance. While loading, freed memory is zeroed so that the snapshot holds
 * live data only (the rest compresses away and is not written into instances).
 * A loading failure is kept: engine_load_status reports it, and so does
 * engine_run_loaded.
 */
static JSContext *loaded_ctx;
static int load_status = ENGINE_FAILED;
static int zero_freed;

static void *zeroing_malloc(JSMallocState *s, size_t size) {
  void *ptr = malloc(size);
  if (ptr) s->malloc_size += malloc_usable_size(ptr);
  return ptr;
}

static void zeroing_free(JSMallocState *s, void *ptr) {
  if (!ptr) return;
  size_t size = malloc_usable_size(ptr);
  s->malloc_size -= size;
  if (zero_freed) memset(ptr, 0, size);
  free(ptr);
}

static void *zeroing_realloc(JSMallocState *s, void *ptr, size_t size) {
  if (!ptr) return size ? zeroing_malloc(s, size) : NULL;
  if (!size) {
    zeroing_free(s, ptr);
    return NULL;
  }
  size_t old = malloc_usable_size(ptr);
  if (!zero_freed) {
    void *moved = realloc(ptr, size);
    if (moved) s->malloc_size += malloc_usable_size(moved) - old;
    return moved;
  }
  void *moved = malloc(size);
  if (!moved) return NULL;
  memcpy(moved, ptr, old < size ? old : size);
  s->malloc_size += malloc_usable_size(moved);
  zeroing_free(s, ptr);
  return moved;
}

static const JSMallocFunctions zeroing_malloc_functions = {
    zeroing_malloc, zeroing_free, zeroing_realloc, malloc_usable_size,
};

EXPORT("engine_init") void engine_init(void) {
  if (loaded_ctx || called) {
    fail("engine_init runs once, before any other call", NULL);
    return;
  }
  called = 1;
  zero_freed = 1;
  size_t len = 0, capacity = 64 * 1024;
  uint8_t *code = malloc(capacity);
  for (;;) {
    if (!code) {
      fail("out of memory reading the konnector's bytecode", NULL);
      zero_freed = 0;
      return;
    }
    if (len == capacity) {
      uint8_t *grown = malloc(capacity * 2);
      if (grown) memcpy(grown, code, len);
      memset(code, 0, capacity);
      free(code);
      code = grown;
      capacity *= 2;
      continue;
    }
    ssize_t n = read(0, code + len, capacity - len);
    if (n < 0) {
      memset(code, 0, capacity);
      free(code);
      fail("cannot read the konnector's bytecode from stdin", NULL);
      zero_freed = 0;
      return;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  runtime = JS_NewRuntime2(&zeroing_malloc_functions, NULL);
  if (!runtime) {
    fail("out of memory creating the JavaScript runtime", NULL);
  } else if (load_konnector(&loaded_ctx, code, len, 1) == ENGINE_OK) {
    JS_RunGC(runtime);
    load_status = ENGINE_OK;
    output_len = 0;
  }
  memset(code, 0, capacity);
  free(code);
  zero_freed = 0;
}

/* ENGINE_OK when engine_init loaded the konnector, else its error is the output. */
EXPORT("engine_load_status") int engine_load_status(void) {
  if (load_status != ENGINE_OK) output = (const uint8_t *)error_buf;
  return load_status;
}

EXPORT("engine_run_loaded") int engine_run_loaded(const char *job, size_t job_len) {
  if (load_status != ENGINE_OK) return engine_load_status();
  if (ran_loaded) return fail("an engine instance serves one call; instantiate a fresh one", NULL);
  ran_loaded = 1;
  return run_konnector(loaded_ctx, job, job_len);
}
