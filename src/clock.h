/* The monotonic clock in microseconds: the one time base for timeouts, ejections, slow
 * start and health checks, shared by every module (clock_gettime is a vDSO call). */
#ifndef MG_CLOCK_H
#define MG_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

#endif
