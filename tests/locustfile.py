"Locust users of the prediction service: mostly single predictions, some small batches, health and metadata checks."
from locust import FastHttpUser, between, task

from wine_nb.serve.inputs import TYPICAL_WINES


class WineTaster(FastHttpUser):
    wait_time = between(0.01, 0.05)

    @task(10)
    def predict_one(self):
        for wine in TYPICAL_WINES.values():
            with self.client.post("/predict", json=wine, catch_response=True) as response:
                if response.status_code != 200 or response.json()["quality"] not in range(3, 10):
                    response.failure(response.text[:200])

    @task(2)
    def predict_batch(self):
        wines = list(TYPICAL_WINES.values()) * 50
        with self.client.post("/predict/batch", json={"wines": wines}, catch_response=True) as response:
            if response.status_code != 200 or response.json()["n"] != 100: response.failure(response.text[:200])

    @task(1)
    def health(self):
        self.client.get("/health")

    @task(1)
    def model(self):
        self.client.get("/model")
