"""Turn a Gymnasium classic-control env into a CMDP: CartPole with a cost for leaving the centre of the track."""

import gymnasium as gym

from cmdp_envs.wrappers import CostFunction, RecordEpisodeCost


def off_centre(observation, action, next_observation, info) -> float:
    """1 for every step the cart ends more than 0.2 from the centre of the track."""
    return float(abs(next_observation[0]) > 0.2)


env = RecordEpisodeCost(CostFunction(gym.make("CartPole-v1"), off_centre), gamma=0.99)
for episode in range(3):
    observation, _ = env.reset(seed=episode)
    done = False
    while not done:
        # A hand-written balancing rule: push towards the side the pole falls to. It keeps the pole up, but the cart
        # drifts, which is what the cost measures.
        action = int(observation[2] + 0.5 * observation[3] > 0)
        observation, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    stats = info["episode"]
    print(f"episode {episode}: length {stats['l']}, return {stats['r']:.0f}, cost {stats['c']:.0f}, "
          f"discounted cost {stats['c_discounted']:.2f}")
