"""ptft_keras.export"""
