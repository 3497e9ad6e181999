// GNU Scientific Library, as the convergence model uses it.
// GSL's default error handler calls abort(): callers switch it off once with
// gsl_set_error_handler_off() and check every return code.
#include <gsl/gsl_errno.h>
#include <gsl/gsl_vector.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_statistics_double.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_fit.h>

// Swift 6 refuses to read mutable C globals (they are not concurrency-safe); the convergence
// model reads GSL's solver descriptors through these accessors instead.
static inline const gsl_multifit_nlinear_type *cgsl_multifit_nlinear_trust(void) {
    return gsl_multifit_nlinear_trust;
}
static inline const gsl_multifit_nlinear_trs *cgsl_multifit_nlinear_trs_lm(void) {
    return gsl_multifit_nlinear_trs_lm;
}
