SELECT n, sq FROM {{ upstream["squares"] }} ORDER BY n
