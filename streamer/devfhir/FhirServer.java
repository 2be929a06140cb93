// A HAPI FHIR JPA server (R4B, in-memory H2) for the streamer's tests: a plain Spring context with HAPI's
// own configuration classes, and HAPI's RestfulServer at /fhir/* on embedded Jetty 12. No Spring Boot.
//
//   java -Xmx512m -cp 'classes:libs/*' FhirServer [PORT]   (0 or no PORT: a free port)
//
// Prints "FHIR server listening on port N" once Jetty listens; /fhir/metadata answers once it is ready.
// Stops (closing the Spring context) on SIGTERM, or when its standard input closes (its parent died).

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4b.JpaR4BConfig;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.util.Properties;
import javax.sql.DataSource;
import org.apache.commons.dbcp2.BasicDataSource;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

public final class FhirServer {

	@Configuration
	@Import({
		JpaR4BConfig.class,
		HapiJpaConfig.class,
		JpaBatch2Config.class,
		Batch2JobsConfig.class,
		SubscriptionChannelConfig.class,
		ThreadPoolFactoryConfig.class
	})
	public static class Config {

		@Bean
		public JpaStorageSettings storageSettings() {
			JpaStorageSettings settings = new JpaStorageSettings();
			// streamer's ids are client-assigned (PUT Type/<uuid>); ANY also allows purely numeric ones.
			settings.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ANY);
			return settings;
		}

		@Bean
		public PartitionSettings partitionSettings() {
			return new PartitionSettings();
		}

		@Bean
		public SubscriptionSettings subscriptionSettings() {
			return new SubscriptionSettings();
		}

		@Bean(destroyMethod = "close")
		public BasicDataSource dataSource() {
			BasicDataSource dataSource = new BasicDataSource();
			dataSource.setDriver(new org.h2.Driver());
			dataSource.setUrl("jdbc:h2:mem:streamer-fhir;DB_CLOSE_DELAY=-1");
			dataSource.setUsername("sa");
			dataSource.setPassword("");
			dataSource.setMaxTotal(10);
			return dataSource;
		}

		@Bean
		public LocalContainerEntityManagerFactoryBean entityManagerFactory(
				ConfigurableListableBeanFactory beanFactory,
				FhirContext fhirContext,
				JpaStorageSettings storageSettings,
				DataSource dataSource) {
			LocalContainerEntityManagerFactoryBean factory =
					HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
			factory.setPersistenceUnitName("HAPI_PU");
			factory.setDataSource(dataSource);
			Properties jpa = new Properties();
			jpa.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
			jpa.put("hibernate.hbm2ddl.auto", "update");
			jpa.put("hibernate.search.enabled", "false");
			jpa.put("hibernate.format_sql", "false");
			jpa.put("hibernate.show_sql", "false");
			factory.setJpaProperties(jpa);
			return factory;
		}

		@Bean
		@Primary
		public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
			return new JpaTransactionManager(entityManagerFactory);
		}
	}

	private FhirServer() {}

	public static void main(String[] args) throws Exception {
		int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
		AnnotationConfigApplicationContext spring = new AnnotationConfigApplicationContext(Config.class);

		FhirContext fhirContext = spring.getBean(FhirContext.class);
		RestfulServer restful = new RestfulServer(fhirContext);
		restful.registerProviders(spring.getBean("myResourceProvidersR4B", ResourceProviderFactory.class).createProviders());
		restful.registerProvider(spring.getBean(JpaSystemProvider.class));
		restful.setPagingProvider(spring.getBean(DatabaseBackedPagingProvider.class));
		restful.setServerConformanceProvider(new JpaCapabilityStatementProvider(
				restful,
				spring.getBean(IFhirSystemDao.class),
				spring.getBean(JpaStorageSettings.class),
				spring.getBean(ISearchParamRegistry.class),
				spring.getBean(IValidationSupport.class)));

		Server jetty = new Server();
		ServerConnector connector = new ServerConnector(jetty);
		connector.setHost("127.0.0.1");
		connector.setPort(port);
		jetty.addConnector(connector);
		ServletContextHandler context = new ServletContextHandler();
		context.setContextPath("/");
		context.addServlet(new ServletHolder(restful), "/fhir/*");
		jetty.setHandler(context);
		jetty.start();

		Runnable stop = () -> {
			try {
				jetty.stop();
			} catch (Exception ignored) {
				// stopping anyway
			}
			spring.close();
		};
		Runtime.getRuntime().addShutdownHook(new Thread(stop, "fhir-server-stop"));
		System.out.println("FHIR server listening on port " + connector.getLocalPort());
		System.out.flush();

		// The parent closing our standard input (or dying) stops the server.
		while (System.in.read() != -1) {
			// ignore input
		}
		System.exit(0);
	}
}
