"""`metabo demo`: fit a GP to a few points of a known function and print the posterior."""

HELP = "fit a GP to a few noisy points of sin(6x) by maximum likelihood and print its posterior"


def add_arguments(parser) -> None:
    parser.add_argument("--points", type=int, default=8, help="number of observations (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from metabo.commands.common import UserError
    from metabo.gp import GPModel, negative_log_likelihood, posterior

    if args.points < 2:
        raise UserError("--points must be at least 2")
    key_x, key_noise, key_init = jax.random.split(jax.random.key(args.seed), 3)
    x = jax.random.uniform(key_x, (args.points, 1), dtype=jnp.float64)
    y = jnp.sin(6 * x[:, 0]) + 0.05 * jax.random.normal(key_noise, (args.points,), dtype=jnp.float64)

    model = GPModel(mean="constant", kernel="matern52")
    params = model.init(key_init, 1, y_mean=float(y.mean()), y_var=float(y.var()))
    optimizer = optax.adam(0.05)

    @jax.jit
    def step(params, opt_state):
        loss, grad = jax.value_and_grad(lambda p: negative_log_likelihood(model, p, x, y))(params)
        updates, opt_state = optimizer.update(grad, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    for _ in range(300):
        params, opt_state, loss = step(params, opt_state)
    hyper = model.hyper(params)
    print(f"fitted GP: mean {float(params.mean_constant):.3f}, lengthscale {float(hyper.lengthscale[0]):.3f}, "
          f"signal variance {float(hyper.signal):.3f}, noise variance {float(hyper.noise):.2e}, "
          f"NLL {float(loss):.3f}")
    grid = jnp.linspace(0, 1, 11)[:, None]
    mean, var = posterior(model, params, x, y, grid)
    print(f"{'x':>5} {'true f':>8} {'mean':>8} {'std':>7}")
    for xi, mi, vi in zip(np.asarray(grid[:, 0]), np.asarray(mean), np.asarray(var), strict=True):
        print(f"{xi:5.2f} {np.sin(6 * xi):8.3f} {mi:8.3f} {np.sqrt(vi):7.3f}")
    return 0
