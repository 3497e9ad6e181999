import CGSL

/// Every GSL call of the module lives here, each checked by `check`, which turns a status code
/// into a `ModelError` naming the call. GSL's default error handler aborts the process: it is
/// switched off once, before the first call.
enum GSL {
    private static let errorHandlerOff: Void = { _ = gsl_set_error_handler_off() }()

    private static func check(_ status: Int32, _ call: String) throws(ModelError) {
        guard status != Int32(GSL_SUCCESS) else { return }
        throw .gsl(call: call, status: status, message: String(cString: gsl_strerror(status)))
    }

    /// The value of a model at sample `i` for `parameters`, and its gradient with respect to the
    /// parameters when `gradient` is given.
    typealias Model = (_ parameters: UnsafeBufferPointer<Double>, _ i: Int,
                       _ gradient: UnsafeMutableBufferPointer<Double>?) -> Double

    struct NonlinearFit {
        var parameters: [Double]
        /// (JᵀJ)⁻¹ at the solution, row-major, not yet scaled by the residual variance.
        var covariance: [Double]
        var residualSumOfSquares: Double
        var iterations: Int
    }

    /// Least squares of `model` against `observed` with gsl_multifit_nlinear (trust region,
    /// Levenberg–Marquardt, analytic Jacobian), from `start`.
    static func leastSquares(observed: [Double], start: [Double], maxIterations: Int,
                             model: @escaping Model) throws(ModelError) -> NonlinearFit {
        _ = errorHandlerOff
        let n = observed.count, p = start.count
        let problem = Problem(observed: observed, parameterCount: p, model: model)
        var settings = gsl_multifit_nlinear_default_parameters()
        settings.trs = cgsl_multifit_nlinear_trs_lm()
        guard let w = gsl_multifit_nlinear_alloc(cgsl_multifit_nlinear_trust(), &settings, n, p) else {
            throw .gsl(call: "gsl_multifit_nlinear_alloc", status: Int32(GSL_ENOMEM), message: "out of memory")
        }
        defer { gsl_multifit_nlinear_free(w) }
        let x = try vector(start)
        defer { gsl_vector_free(x) }

        var fdf = gsl_multifit_nlinear_fdf()
        fdf.f = { x, context, f in
            Unmanaged<Problem>.fromOpaque(context!).takeUnretainedValue().residuals(x!, f!)
        }
        fdf.df = { x, context, j in
            Unmanaged<Problem>.fromOpaque(context!).takeUnretainedValue().jacobian(x!, j!)
        }
        fdf.fvv = nil
        fdf.n = n
        fdf.p = p
        fdf.params = Unmanaged.passUnretained(problem).toOpaque()

        return try withExtendedLifetime(problem) { () throws(ModelError) -> NonlinearFit in
            try check(gsl_multifit_nlinear_init(x, &fdf, w), "gsl_multifit_nlinear_init")
            var info: Int32 = 0
            let status = gsl_multifit_nlinear_driver(maxIterations, 1e-10, 1e-10, 0, nil, nil, &info, w)
            let iterations = Int(gsl_multifit_nlinear_niter(w))
            let residual = gsl_multifit_nlinear_residual(w)!
            let ssr = pow2(gsl_blas_dnrm2(residual))
            if status == Int32(GSL_EMAXITER) {
                // The driver also says EMAXITER when its first step cannot improve the start;
                // that is a success when the start already fits exactly.
                let scale = observed.reduce(0) { $0 + $1 * $1 }
                guard ssr <= 1e-20 * max(scale, 1) else { throw .fitDidNotConverge(iterations: iterations) }
            } else {
                try check(status, "gsl_multifit_nlinear_driver")
            }
            let position = gsl_multifit_nlinear_position(w)!
            let solution = (0..<p).map { gsl_vector_get(position, $0) }
            guard solution.allSatisfy(\.isFinite), ssr.isFinite else {
                throw .gsl(call: "gsl_multifit_nlinear_driver", status: Int32(GSL_EBADFUNC), message: "the solution is not finite")
            }
            return NonlinearFit(parameters: solution, covariance: try covariance(gsl_multifit_nlinear_jac(w)!, p),
                                residualSumOfSquares: ssr, iterations: iterations)
        }
    }

    /// (JᵀJ)⁻¹ for a Jacobian given row by row (n rows of p values), row-major p×p.
    static func covariance(jacobianRows rows: [[Double]]) throws(ModelError) -> [Double] {
        _ = errorHandlerOff
        let p = rows.first?.count ?? 0
        guard let j = gsl_matrix_alloc(rows.count, p) else {
            throw .gsl(call: "gsl_matrix_alloc", status: Int32(GSL_ENOMEM), message: "out of memory")
        }
        defer { gsl_matrix_free(j) }
        for (i, row) in rows.enumerated() {
            for (k, v) in row.enumerated() { gsl_matrix_set(j, i, k, v) }
        }
        return try covariance(j, p)
    }

    private static func covariance(_ j: UnsafePointer<gsl_matrix>, _ p: Int) throws(ModelError) -> [Double] {
        guard let c = gsl_matrix_alloc(p, p) else {
            throw .gsl(call: "gsl_matrix_alloc", status: Int32(GSL_ENOMEM), message: "out of memory")
        }
        defer { gsl_matrix_free(c) }
        try check(gsl_multifit_nlinear_covar(j, 0, c), "gsl_multifit_nlinear_covar")
        return (0..<(p * p)).map { gsl_matrix_get(c, $0 / p, $0 % p) }
    }

    /// y = c0 + c1·x by gsl_fit_linear: the slope, its variance (from the scatter about the
    /// line) and the residual sum of squares.
    static func line(x: [Double], y: [Double]) throws(ModelError) -> (slope: Double, slopeVariance: Double, residualSumOfSquares: Double) {
        _ = errorHandlerOff
        var c0 = 0.0, c1 = 0.0, cov00 = 0.0, cov01 = 0.0, cov11 = 0.0, ssr = 0.0
        try check(gsl_fit_linear(x, 1, y, 1, x.count, &c0, &c1, &cov00, &cov01, &cov11, &ssr), "gsl_fit_linear")
        return (c1, cov11, ssr)
    }

    /// y = c1·x (through the origin) by gsl_fit_mul: the slope, its variance and the residual
    /// sum of squares.
    static func proportional(x: [Double], y: [Double]) throws(ModelError) -> (slope: Double, slopeVariance: Double, residualSumOfSquares: Double) {
        _ = errorHandlerOff
        var c1 = 0.0, cov11 = 0.0, ssr = 0.0
        try check(gsl_fit_mul(x, 1, y, 1, x.count, &c1, &cov11, &ssr), "gsl_fit_mul")
        return (c1, cov11, ssr)
    }

    private static func vector(_ values: [Double]) throws(ModelError) -> UnsafeMutablePointer<gsl_vector> {
        guard let v = gsl_vector_alloc(values.count) else {
            throw .gsl(call: "gsl_vector_alloc", status: Int32(GSL_ENOMEM), message: "out of memory")
        }
        for (i, value) in values.enumerated() { gsl_vector_set(v, i, value) }
        return v
    }

    /// What the C callbacks reach through their `params` pointer.
    private final class Problem {
        let observed: [Double]
        let model: Model
        var parameters: [Double]
        var gradient: [Double]

        init(observed: [Double], parameterCount: Int, model: @escaping Model) {
            self.observed = observed
            self.model = model
            parameters = [Double](repeating: 0, count: parameterCount)
            gradient = parameters
        }

        private func load(_ x: UnsafePointer<gsl_vector>) {
            for k in parameters.indices { parameters[k] = gsl_vector_get(x, k) }
        }

        func residuals(_ x: UnsafePointer<gsl_vector>, _ f: UnsafeMutablePointer<gsl_vector>) -> Int32 {
            load(x)
            return parameters.withUnsafeBufferPointer { p in
                for i in observed.indices {
                    let r = model(p, i, nil) - observed[i]
                    guard r.isFinite else { return Int32(GSL_EBADFUNC) }
                    gsl_vector_set(f, i, r)
                }
                return Int32(GSL_SUCCESS)
            }
        }

        func jacobian(_ x: UnsafePointer<gsl_vector>, _ j: UnsafeMutablePointer<gsl_matrix>) -> Int32 {
            load(x)
            return parameters.withUnsafeBufferPointer { p in
                gradient.withUnsafeMutableBufferPointer { g in
                    for i in observed.indices {
                        _ = model(p, i, g)
                        for k in g.indices {
                            guard g[k].isFinite else { return Int32(GSL_EBADFUNC) }
                            gsl_matrix_set(j, i, k, g[k])
                        }
                    }
                    return Int32(GSL_SUCCESS)
                }
            }
        }
    }
}

@inline(__always) func pow2(_ x: Double) -> Double { x * x }
