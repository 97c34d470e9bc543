"""ptft_keras.data"""
