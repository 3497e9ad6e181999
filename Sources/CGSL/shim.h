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
