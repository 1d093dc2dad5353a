"""Networks and their training: `tf.data` pipelines (`data`), the plain and stacked MLPs (`models`),
extra layers a saved model may hold (`layers`), and the stacked XLA engine (`engine`).
"""
