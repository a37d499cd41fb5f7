/* Return codes shared by every module: 0 success, negative failure.
 * Incremental parsers return bytes consumed (>= 0), MG_AGAIN or MG_EBAD. */
#ifndef MG_ERRORS_H
#define MG_ERRORS_H

#define MG_OK 0
#define MG_EBAD (-1)   /* malformed input; *why says what */
#define MG_AGAIN (-2)  /* need more bytes */
#define MG_ELIMIT (-3) /* a configured limit was exceeded */
#define MG_ENOMEM (-4)
#define MG_ESYS (-5) /* errno says why */

#endif
