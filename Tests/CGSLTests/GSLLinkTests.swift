import CGSL
import Testing

/// GSL links through pkg-config and its error handler can be switched off (the default aborts).
@Test func gslFitsALineWithErrorHandlerOff() {
    gsl_set_error_handler_off()
    var x: [Double] = [0, 1, 2, 3]
    var y: [Double] = [1, 3, 5, 7]
    let mean = gsl_stats_mean(&y, 1, 4)
    #expect(mean == 4)
    let cov = gsl_stats_covariance(&x, 1, &y, 1, 4)
    let varX = gsl_stats_variance(&x, 1, 4)
    #expect(abs(cov / varX - 2) < 1e-12)
}
