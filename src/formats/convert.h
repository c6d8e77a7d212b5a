/* convert.h: conversion to the native folder (llt_convert in the public header is the front
 * door). */
#ifndef LLT_FORMATS_CONVERT_H
#define LLT_FORMATS_CONVERT_H

#include "base/error.h"

/* A Hugging Face folder -> native files in dst (which may be src itself: the load cache). */
llt_status llt_convert_hf(const char *src, const char *dst, llt_dtype dtype, llt_error *err);

/* From the path alone: a file is GGUF, a folder with config.json is HF, else native. */
llt_format llt_detect_format(const char *path);

#endif
