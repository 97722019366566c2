# logs each start into the project directory, then serves its version and
# the requirements its image installed
mkdir -p /code/data /tmp/www
echo "start $(cat /code/VERSION)" >>/code/data/visits.log
cp /code/VERSION /tmp/www/index.html
cp /etc/installed.txt /tmp/www/installed
exec httpd -f -p 8000 -h /tmp/www
